"""Storage: the database engine, the models, their queries, claims, API keys and migrations."""
