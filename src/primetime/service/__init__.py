"""Real-time recommendation service: HTTP app, actions (what users and admins do), event
store, caches, experiments."""
