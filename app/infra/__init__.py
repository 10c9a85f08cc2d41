"""Infrastructure: models, database, per-app state, events, queues, storage, schemas, config, logs. Imports nothing above it."""
