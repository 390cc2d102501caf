"""``esports report match|stream|channel``: figures from the analytics views of the read model.

- ``command``: the command's ``run`` and the report functions by kind
- ``options``: the command's options
- ``match``: a match's report; ``stream``: a stream's and a channel's
- ``audience``: concurrent and unique viewers, watch time, retention over a set of streams
- ``sections``: chat, moderation, polls and predictions over a set of streams (every report has them)
- ``text``, ``html``, ``svg``: the renderings (pure)
"""
