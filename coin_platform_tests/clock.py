"""A clock tests control: reading it is free and sleeping moves it forward."""


class ControlledClock:
    """Shared by a replay server and a client's limiter, so weight windows pass without waiting."""

    def __init__(self, start_s: float) -> None:
        self.now = start_s
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
