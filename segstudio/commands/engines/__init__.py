"""Where ``evaluate`` and ``predict`` run: options shared by the engines (``--engine``, ``--shard``,
``--stats``); the Ray pipeline itself is ``segstudio.distributed.ray_engine``."""
