from collections.abc import Callable, Iterator

import pytest

from users.pbx import Kamailio, kamailio_available


@pytest.fixture
def kamailio_factory() -> Iterator[Callable[..., Kamailio]]:
    """Start real Kamailio registrars (``users.pbx.Kamailio`` keyword arguments).

    All of them stop at the end of the test.
    """
    missing = kamailio_available()
    if missing:
        pytest.fail(f"{missing}; `make services` installs it")
    started: list[Kamailio] = []

    def start(**kwargs: object) -> Kamailio:
        pbx = Kamailio(**kwargs)  # type: ignore[arg-type]
        started.append(pbx)
        pbx.start()
        return pbx

    yield start
    for pbx in started:
        pbx.close()


@pytest.fixture
def kamailio(kamailio_factory: Callable[..., Kamailio]) -> Kamailio:
    """A running Kamailio registrar on a free loopback port (deploy/kamailio/kamailio.cfg)."""
    return kamailio_factory()
