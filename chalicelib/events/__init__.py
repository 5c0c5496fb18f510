"""Lambda handlers fed by events rather than by HTTP: S3 uploads (EventBridge), schedules."""
