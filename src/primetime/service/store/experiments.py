"""A/B experiments: arms, sticky assignments, and per-arm outcomes by request-id attribution."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from sqlalchemy import case, exists, func, select
from sqlalchemy.exc import IntegrityError

from primetime.data.events import EventType
from primetime.service.db import Event, Experiment, ExperimentAssignment, Impression
from primetime.service.store.base import StoreBase
from primetime.service.store.errors import NotFound
from primetime.service.store.records import Arm, ArmOutcome, ExperimentRecord
from primetime.service.store.validate import _check_id, _check_slug, _check_str

CLICK_TYPES: Final[tuple[str, ...]] = (EventType.CLICK.value, EventType.PLAY.value)
"""Event types that count as a click on an impression in `experiment_outcomes`."""
COMPLETE_TYPES: Final[tuple[str, ...]] = (EventType.COMPLETE.value,)
"""Event types that count as a completion in `experiment_outcomes`."""


def _check_arms(arms: Sequence[Arm | Mapping[str, Any]]) -> list[Arm]:
    if isinstance(arms, str | bytes) or not isinstance(arms, Sequence) or not arms:
        raise ValueError("arms: expected a non-empty list of {name, model_version, weight}")
    out: list[Arm] = []
    for i, raw in enumerate(arms):
        if isinstance(raw, Arm):
            fields: Mapping[str, Any] = {
                "name": raw.name,
                "model_version": raw.model_version,
                "weight": raw.weight,
            }
        elif isinstance(raw, Mapping):
            fields = raw
        else:
            raise ValueError(f"arms[{i}]: expected a mapping, got {type(raw).__name__}")
        extra = set(fields) - {"name", "model_version", "weight"}
        if extra:
            raise ValueError(f"arms[{i}]: unknown keys {sorted(extra)}")
        name = _check_slug(f"arms[{i}].name", fields.get("name"))
        version = _check_str(f"arms[{i}].model_version", fields.get("model_version"), 256)
        w = fields.get("weight", 1.0)
        if isinstance(w, bool) or not isinstance(w, int | float) or not (0 < w < math.inf):
            raise ValueError(f"arms[{i}].weight: expected a finite number > 0, got {w!r}")
        out.append(Arm(name, version, float(w)))
    names = [a.name for a in out]
    if len(set(names)) != len(names):
        raise ValueError(f"arms: duplicate arm names in {names}")
    return out


def _experiment_record(row: Experiment) -> ExperimentRecord:
    return ExperimentRecord(
        id=row.id,
        name=row.name,
        arms=tuple(Arm(a["name"], a["model_version"], float(a["weight"])) for a in row.arms),
        created_at=row.created_at,
        active=row.active,
    )


class ExperimentsMixin(StoreBase):
    """Experiments and assignments (the `experiments` and `experiment_assignments` tables)."""

    def create_experiment(
        self, experiment_id: str, name: str, arms: Sequence[Arm | Mapping[str, Any]]
    ) -> ExperimentRecord:
        """Create an active experiment.

        Args:
            experiment_id: slug (lower-case letters, digits, `_ . -`; ≤ 64).
            name: human-readable name.
            arms: `Arm`s or mappings `{"name", "model_version", "weight"}` (weight > 0,
                default 1); arm names are slugs, unique within the experiment.

        Raises:
            ValueError: naming the bad argument, or the id exists.
        """
        _check_slug("experiment_id", experiment_id)
        _check_str("name", name, 256)
        arm_list = _check_arms(arms)
        row = Experiment(
            id=experiment_id,
            name=name,
            arms=[
                {"name": a.name, "model_version": a.model_version, "weight": a.weight}
                for a in arm_list
            ],
            created_at=time.time(),
            active=True,
        )
        try:
            with self._sessions.begin() as s:
                s.add(row)
                s.flush()
                return _experiment_record(row)
        except IntegrityError as err:
            raise ValueError(f"experiment_id: {experiment_id!r} exists") from err

    def experiment(self, experiment_id: str) -> ExperimentRecord | None:
        """The experiment with this id, or None."""
        with self._sessions() as s:
            row = s.get(Experiment, experiment_id)
            return _experiment_record(row) if row is not None else None

    def experiments(self) -> list[ExperimentRecord]:
        """All experiments, oldest first."""
        with self._sessions() as s:
            stmt = select(Experiment).order_by(Experiment.created_at, Experiment.id)
            return [_experiment_record(r) for r in s.scalars(stmt)]

    def set_experiment_active(self, experiment_id: str, active: bool) -> ExperimentRecord:
        """Start or stop an experiment (assignments are kept).

        Raises:
            NotFound: no such experiment.
        """
        with self._sessions.begin() as s:
            row = s.get(Experiment, experiment_id)
            if row is None:
                raise NotFound(f"experiment_id: no experiment {experiment_id!r}")
            row.active = bool(active)
            s.flush()
            return _experiment_record(row)

    def assign(self, experiment_id: str, user_id: int, arm: str) -> str:
        """Put a user in an arm unless already assigned; the first assignment sticks.

        Safe under concurrent calls (threads or processes): the primary key lets exactly one
        insert win and the losers read the winner's arm.

        Returns:
            The user's arm: `arm`, or the one assigned earlier.

        Raises:
            NotFound: no such experiment or user.
            ValueError: `arm` is not an arm of the experiment.
        """
        _check_id("user_id", user_id)
        exp = self.experiment(experiment_id)
        if exp is None:
            raise NotFound(f"experiment_id: no experiment {experiment_id!r}")
        names = [a.name for a in exp.arms]
        if arm not in names:
            raise ValueError(f"arm: {arm!r} is not an arm of {experiment_id!r} ({names})")
        current = self.assignment(experiment_id, user_id)
        if current is not None:
            return current
        try:
            with self._sessions.begin() as s:
                s.add(
                    ExperimentAssignment(
                        experiment_id=experiment_id,
                        user_id=user_id,
                        arm=arm,
                        assigned_at=time.time(),
                    )
                )
            return arm
        except IntegrityError as err:
            current = self.assignment(experiment_id, user_id)
            if current is not None:  # lost the race: the winner's arm sticks
                return current
            self._raise_if_no_user(user_id, err)
            raise

    def assignment(self, experiment_id: str, user_id: int) -> str | None:
        """The user's arm in the experiment, or None if not assigned."""
        with self._sessions() as s:
            row = s.get(ExperimentAssignment, (experiment_id, user_id))
            return row.arm if row is not None else None

    def experiment_outcomes(self, experiment_id: str) -> list[ArmOutcome]:
        """Per-arm results, in the experiment's arm order (plus any arm seen only in data).

        Definitions (request-id attribution):
            - users: users assigned to the arm.
            - impressions: impression rows logged with this experiment and arm.
            - clicks: impressions that have at least one `click` or `play` event by the same
              user, on the same item, carrying the same `request_id` — i.e. impressions acted
              on from that very response. Each impression counts once, so clicks ≤
              impressions and `ctr` is a proportion.
            - completions: the same with `complete` events.
        Events without a `request_id` are not attributed to any arm.

        Raises:
            NotFound: no such experiment.
        """
        exp = self.experiment(experiment_id)
        if exp is None:
            raise NotFound(f"experiment_id: no experiment {experiment_id!r}")
        imp = Impression

        def acted(types: tuple[str, ...]) -> Any:
            return exists().where(
                Event.request_id == imp.request_id,
                Event.item_id == imp.item_id,
                Event.user_id == imp.user_id,
                Event.event_type.in_(types),
            )

        per_arm = (
            select(
                imp.arm,
                func.count(),
                func.sum(case((acted(CLICK_TYPES), 1), else_=0)),
                func.sum(case((acted(COMPLETE_TYPES), 1), else_=0)),
            )
            .where(imp.experiment_id == experiment_id)
            .group_by(imp.arm)
        )
        users_per_arm = (
            select(ExperimentAssignment.arm, func.count())
            .where(ExperimentAssignment.experiment_id == experiment_id)
            .group_by(ExperimentAssignment.arm)
        )
        with self._sessions() as s:
            shown = {a: (int(n), int(c or 0), int(d or 0)) for a, n, c, d in s.execute(per_arm)}
            users = {a: int(n) for a, n in s.execute(users_per_arm)}
        arms = [a.name for a in exp.arms]
        arms += sorted((set(shown) | set(users)) - set(arms) - {None})
        return [ArmOutcome(arm, users.get(arm, 0), *shown.get(arm, (0, 0, 0))) for arm in arms]
