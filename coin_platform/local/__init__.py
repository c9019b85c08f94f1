"""Dev tooling: the local stack, the replay exchange and the `coin` CLI. Never imported by defs/."""
