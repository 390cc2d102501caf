"""A stream's lifecycle: the pure decisions (``decisions``) and the agent around them (``agent``)."""
