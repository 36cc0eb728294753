"""Simulated base stations, media resources and handsets: real HTTP clients of a node.

``Simulation`` runs any number of them (``manage.py kwssim`` is its command
line); ``keepalive_once`` sends one keep-alive, for tests and diagnosis.
"""

from basestations.sim.client import Answer, Unreachable, keepalive_once
from basestations.sim.device import Change, SimDevice, SimHandset
from basestations.sim.simulation import Simulation

__all__ = [
    "Answer", "Change", "SimDevice", "SimHandset", "Simulation", "Unreachable", "keepalive_once",
]  # fmt: skip
