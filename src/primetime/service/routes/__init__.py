"""HTTP routes of the service, one module per area, all under ``/api/v1`` except ops."""
