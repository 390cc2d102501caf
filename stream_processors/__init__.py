"""The Faust app: one module per agent family (lifecycle, moderation, viewer counts, polls)."""
