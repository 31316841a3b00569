"""rag-api's routes, one module per area: ``solve`` and ``chat`` (the ``atlas`` model), ``tasks`` (the durable
task API), all reached through llm-proxy, and ``internal`` (the operators' queue view).

A handler's docstring is published as its operation's description in the OpenAPI document, so handlers carry one
only where clients should read it."""
