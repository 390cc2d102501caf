"""Read models: PostgreSQL schema and projectors, Redis key layout, rebuild and replay."""
