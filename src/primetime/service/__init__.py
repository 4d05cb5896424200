"""Real-time recommendation service: HTTP app, event store, caches, experiments."""
