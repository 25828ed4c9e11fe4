"""Sentinance over HTTP: FastAPI over the published warehouse and the models (``sentinance api``).

``app`` wires it; ``routes`` holds the endpoints, ``models`` their typed bodies, ``queries``
the SQL, ``readside`` the connection to the published snapshot, ``stream`` the server-sent
alert stream, ``auth`` and ``limits`` who may call and how much, ``metrics`` the Prometheus
endpoint, ``registry`` and ``sentiment`` the models. ``docs/api.md`` is the user's guide.
"""
