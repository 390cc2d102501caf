"""``esports report``: a match's figures from the analytics views of the read model.

- ``command``: the report (queries, text and JSON renderings) and the command's ``run``
- ``options``: the command's options
"""
