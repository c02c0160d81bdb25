"""The stage machine: a Space's stage as one enum with the Hub's names, its groups, and the allowed moves.

The deployer is the only writer of a Space's stage; every write goes through :func:`check_transition`.
Runtimes never speak in stages: they report an :class:`~spaceyard_runtime.api.AppState`, mapped here by
:func:`from_app_state` (a capacity wait, ``AppState.PENDING`` or ``CapacityPending``, is ``SCHEDULING``).
The builder reports its failures with the Hub's names too (``BuildResult.stage``), read by :meth:`Stage.of`.

Allowed transitions, by target (``*`` = from any stage; a stage may always be written again, with a
new reason)::

    * -> BUILDING | RUNNING_BUILDING                    a push (an older version serving or not)
    * -> CONFIG_ERROR | NO_APP_FILE | BUILD_ERROR       a build ended: recorded whatever happened meanwhile
    * -> APP_STARTING | RUNNING_APP_STARTING            a version starts (deploy, restart, wake)
    * -> PAUSED                                         the owner paused it
    starting | building | errors | SLEEPING -> SCHEDULING                a start waits for capacity
    starting | building | serving | SLEEPING | PAUSED | RUNTIME_ERROR -> RUNNING   a version serves
    starting | building | serving | build errors | SLEEPING -> RUNTIME_ERROR
                                                        a start failed, or the serving app died
    starting | serving -> SLEEPING                      idle (and restart recovery: nothing runs any more)

(``starting`` = APP_STARTING, RUNNING_APP_STARTING, SCHEDULING; ``serving`` = RUNNING, RUNNING_BUILDING,
RUNNING_APP_STARTING; ``building`` = BUILDING, RUNNING_BUILDING.) Refused, for example: a new Space
(``NO_APP_FILE``) or a failed build straight to ``RUNNING``; a paused Space to ``SLEEPING``,
``SCHEDULING`` or ``RUNTIME_ERROR``; anything to ``STOPPED`` or ``DELETING`` (Hub stages Spaceyard never
writes). A wake records ``APP_STARTING`` off the visitors' critical path, so a capacity wait may be
recorded before it: hence ``SLEEPING`` and the errors -> ``SCHEDULING``. An older version keeps serving
through a failed build, so the app dying then is a build error -> ``RUNTIME_ERROR``. A static version
needs no start: it goes to ``RUNNING`` at once, through ``APP_STARTING`` only from a failed build.
"""

from __future__ import annotations

import enum

from spaceyard_runtime.api import AppState
from spaceyard_runtime.idle import SLEEPABLE_STAGES


class Stage(enum.StrEnum):
    """The Hub's ``runtime.stage`` values (``SCHEDULING``: a start waiting for hardware capacity)."""

    NO_APP_FILE = "NO_APP_FILE"
    CONFIG_ERROR = "CONFIG_ERROR"
    BUILDING = "BUILDING"
    BUILD_ERROR = "BUILD_ERROR"
    APP_STARTING = "APP_STARTING"
    RUNNING_APP_STARTING = "RUNNING_APP_STARTING"
    RUNNING = "RUNNING"
    RUNNING_BUILDING = "RUNNING_BUILDING"
    RUNTIME_ERROR = "RUNTIME_ERROR"
    SCHEDULING = "SCHEDULING"
    SLEEPING = "SLEEPING"
    PAUSED = "PAUSED"
    STOPPED = "STOPPED"
    DELETING = "DELETING"

    @classmethod
    def of(cls, value: str) -> Stage:
        """A stored or reported stage name; an unknown one (never written by Spaceyard) is ``BUILD_ERROR``."""
        try:
            return cls(value)
        except ValueError:
            return cls.BUILD_ERROR

    @property
    def serving(self) -> bool:
        """A version answers visitors (possibly while another builds or starts)."""
        return self in SERVING

    @property
    def error(self) -> bool:
        return self in ERRORS

    @property
    def sleepable(self) -> bool:
        """The idle policy may put the Space to sleep (:mod:`spaceyard_runtime.idle` owns the rule)."""
        return self in SLEEPABLE

    @property
    def building(self) -> bool:
        return self in BUILDING

    @property
    def starting(self) -> bool:
        return self in STARTING

    @property
    def in_progress(self) -> bool:
        """A build or a start is under way: a restart of the platform resumes it."""
        return self in IN_PROGRESS


SERVING = frozenset({Stage.RUNNING, Stage.RUNNING_BUILDING, Stage.RUNNING_APP_STARTING})
ERRORS = frozenset({Stage.CONFIG_ERROR, Stage.NO_APP_FILE, Stage.BUILD_ERROR, Stage.RUNTIME_ERROR})
BUILD_ERRORS = frozenset({Stage.CONFIG_ERROR, Stage.NO_APP_FILE, Stage.BUILD_ERROR})
SLEEPABLE = frozenset(Stage(s) for s in SLEEPABLE_STAGES)
BUILDING = frozenset({Stage.BUILDING, Stage.RUNNING_BUILDING})
STARTING = frozenset({Stage.APP_STARTING, Stage.RUNNING_APP_STARTING, Stage.SCHEDULING})
IN_PROGRESS = BUILDING | STARTING
SETTLED = frozenset({Stage.RUNNING, Stage.SLEEPING, Stage.PAUSED}) | ERRORS
"""Where a followed build ends (the CLI stops following)."""
INITIAL = Stage.NO_APP_FILE
"""A new Space, before its first push."""

_ANY = frozenset(Stage)
_TO: dict[Stage, frozenset[Stage]] = {
    Stage.BUILDING: _ANY,
    Stage.RUNNING_BUILDING: _ANY,
    Stage.CONFIG_ERROR: _ANY,
    Stage.NO_APP_FILE: _ANY,
    Stage.BUILD_ERROR: _ANY,
    Stage.APP_STARTING: _ANY,
    Stage.RUNNING_APP_STARTING: _ANY,
    Stage.PAUSED: _ANY,
    Stage.SCHEDULING: STARTING | BUILDING | ERRORS | {Stage.SLEEPING},
    Stage.RUNNING: STARTING | BUILDING | SERVING | {Stage.SLEEPING, Stage.PAUSED, Stage.RUNTIME_ERROR},
    Stage.RUNTIME_ERROR: STARTING | BUILDING | SERVING | BUILD_ERRORS | {Stage.SLEEPING},
    Stage.SLEEPING: STARTING | SERVING,
}
"""Allowed transitions, by target stage (see the module docstring)."""


class IllegalTransition(RuntimeError):
    """The deployer tried a move the stage machine does not allow: a bug, refused."""


def allowed(old: Stage, new: Stage) -> bool:
    return old is new or old in _TO.get(new, frozenset())


def check_transition(old: Stage, new: Stage) -> None:
    if not allowed(old, new):
        raise IllegalTransition(f"{old} -> {new} is not a transition of the stage machine")


def from_app_state(state: AppState, *, serving_before: bool = False) -> Stage | None:
    """The stage an app's reported state means; ``None`` when it says nothing new (still starting).

    ``serving_before``: an older version still serves (the start is ``RUNNING_APP_STARTING``)."""
    if state is AppState.RUNNING:
        return Stage.RUNNING
    if state is AppState.PENDING:
        return Stage.SCHEDULING
    if state is AppState.EXITED:
        return Stage.RUNTIME_ERROR
    return Stage.RUNNING_APP_STARTING if serving_before else Stage.APP_STARTING


def starting(serving_before: bool) -> Stage:
    """The stage of a version being started."""
    return Stage.RUNNING_APP_STARTING if serving_before else Stage.APP_STARTING


def building(serving_before: bool) -> Stage:
    """The stage of a build requested while an older version serves, or not."""
    return Stage.RUNNING_BUILDING if serving_before else Stage.BUILDING
