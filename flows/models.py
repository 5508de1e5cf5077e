"""Flows, their versions and graphs, and the state of customers walking them."""

import json
from functools import cached_property

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.timezone import now
from django_fsm import RETURN_VALUE, FSMField, FSMModelMixin, transition

from customers.models import Customer, Event
from maestra.audit.models import AuditEntry


class FrozenVersionError(Exception):
    """A launched version is frozen forever; nothing may change its graph."""


class Flow(FSMModelMixin, models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        READY = "ready", "Ready for launch"
        LAUNCHING = "launching", "Launching"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        TESTING = "testing", "Testing"
        CREATING_DRAFT = "creating_draft", "Creating draft"
        ARCHIVED = "archived", "Archived"

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    # protected: the status only moves through the transitions below, which the
    # services in flows/lifecycle/ call (with an audit entry each).
    status = FSMField(max_length=20, choices=Status.choices, default=Status.DRAFT, protected=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="flows"
    )
    live_version = models.ForeignKey(
        "FlowVersion", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        indexes = [models.Index(fields=["status"], name="flow_status_idx")]

    def __str__(self) -> str:
        return self.name

    @property
    def audit_entries(self):
        """The flow's entries in the audit log (maestra/audit). Not a
        GenericRelation: that would delete the entries with the flow, and the
        log must outlive its subjects."""
        return AuditEntry.objects.about(self)

    # --- Transitions (state only; side effects live in flows/lifecycle/) ----
    # Every transition carries a label for the admin buttons; `admin=False`
    # hides the ones the system performs by itself.

    @transition(field=status, source=Status.DRAFT, target=Status.READY, custom={"admin": False})
    def mark_ready(self):
        pass

    @transition(field=status, source=Status.READY, target=Status.DRAFT, custom={"admin": False})
    def mark_invalid(self):
        pass

    @transition(
        field=status,
        source=[Status.READY, Status.ACTIVE, Status.PAUSED],
        target=Status.LAUNCHING,
        custom={"label": "Launch"},
    )
    def launch(self):
        pass

    @transition(field=status, source=Status.LAUNCHING, target=Status.ACTIVE, custom={"admin": False})
    def complete_launch(self):
        pass

    @transition(
        field=status,
        source=Status.LAUNCHING,
        target=RETURN_VALUE(Status.DRAFT, Status.READY, Status.ACTIVE, Status.PAUSED),
        custom={"admin": False},
    )
    def fail_launch(self, *, back_to: str):
        return back_to

    @transition(field=status, source=Status.READY, target=Status.TESTING, custom={"label": "Launch as test"})
    def start_test(self):
        pass

    @transition(field=status, source=Status.TESTING, target=Status.READY, custom={"label": "Stop test"})
    def stop_test(self):
        pass

    @transition(field=status, source=Status.ACTIVE, target=Status.PAUSED, custom={"label": "Pause"})
    def pause(self):
        pass

    @transition(field=status, source=Status.PAUSED, target=Status.ACTIVE, custom={"label": "Resume"})
    def resume(self):
        pass

    @transition(
        field=status,
        source=[Status.DRAFT, Status.READY, Status.ACTIVE, Status.PAUSED],
        target=Status.ARCHIVED,
        custom={"label": "Archive"},
    )
    def archive(self):
        pass

    @transition(
        field=status,
        source=[Status.DRAFT, Status.READY, Status.ACTIVE, Status.PAUSED],
        target=Status.CREATING_DRAFT,
        custom={"admin": False},
    )
    def begin_draft(self):
        pass

    @transition(
        field=status,
        source=Status.CREATING_DRAFT,
        target=RETURN_VALUE(Status.DRAFT, Status.READY, Status.ACTIVE, Status.PAUSED),
        custom={"admin": False},
    )
    def finish_draft(self, *, back_to: str):
        return back_to

    # --- Derived state ------------------------------------------------------

    @property
    def is_live(self) -> bool:
        return self.status in (self.Status.ACTIVE, self.Status.PAUSED)

    @property
    def draft(self) -> "FlowVersion | None":
        return self.versions.filter(state=FlowVersion.State.DRAFT).first()


class FlowVersion(models.Model):
    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        LAUNCHED = "launched", "Launched"

    class LaunchLimit(models.TextChoices):
        ONCE = "once", "Once"
        EVERY_TIME = "every_time", "Every time"
        PERIODIC = "periodic", "Periodically"

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.DRAFT)
    is_test = models.BooleanField(default=False)
    # The maestra.flow/1 document exactly as imported or saved (JSON text, so
    # key order survives: export returns what came in). Nodes and edges below
    # are its projection for the engine.
    document_json = models.TextField()
    # Validation errors of the document: [{"node", "field", "message"}].
    errors = models.JSONField(default=list, blank=True)
    # Optimistic concurrency of drafts: +1 on every write of the document. An
    # editor sends the revision it loaded with each autosave; a stale one is
    # refused (flows.lifecycle.DraftConflict) instead of overwriting.
    revision = models.PositiveIntegerField(default=0)
    # Settings projected from the document (queried by the engine).
    timezone = models.CharField(max_length=64, default="UTC")
    launch_limit_mode = models.CharField(
        max_length=12, choices=LaunchLimit.choices, default=LaunchLimit.EVERY_TIME
    )
    launch_limit_period = models.DurationField(null=True, blank=True)
    launch_limit_max_total = models.PositiveIntegerField(null=True, blank=True)
    start_at = models.DateTimeField(null=True, blank=True)
    end_at = models.DateTimeField(null=True, blank=True)
    # Schedule start: the next moment it fires (None: no schedule or not live).
    next_fire_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    launched_at = models.DateTimeField(null=True, blank=True)
    launched_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    stopped_at = models.DateTimeField(null=True, blank=True)

    # Fields that may still change on a launched version (everything else is frozen).
    MUTABLE_WHEN_LAUNCHED = frozenset({"stopped_at", "next_fire_at", "updated_at"})

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["flow", "number"], name="flow_version_number_unique"),
            # At most one draft per flow (Edit re-opens it, never a second one).
            models.UniqueConstraint(fields=["flow"], condition=Q(state="draft"), name="flow_one_draft"),
        ]
        indexes = [
            # The schedule sweep: live versions whose schedule start is due.
            models.Index(
                fields=["next_fire_at"], name="version_fire_idx", condition=Q(next_fire_at__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.flow} v{self.number}"

    def save(self, *args, **kwargs):
        # Guard, not logic: a launched version's graph and settings are frozen.
        if self.pk and self.state == self.State.LAUNCHED:
            update_fields = kwargs.get("update_fields")
            if update_fields is None or not set(update_fields) <= self.MUTABLE_WHEN_LAUNCHED:
                stored = type(self).objects.filter(pk=self.pk).values_list("state", flat=True).first()
                if stored == self.State.LAUNCHED:
                    raise FrozenVersionError(f"{self} is launched and cannot be changed")
        super().save(*args, **kwargs)

    @cached_property
    def document(self) -> dict:
        return json.loads(self.document_json)

    @property
    def is_valid(self) -> bool:
        return not self.errors

    @property
    def is_frozen(self) -> bool:
        return self.state == self.State.LAUNCHED


class Node(models.Model):
    version = models.ForeignKey(FlowVersion, on_delete=models.CASCADE, related_name="nodes")
    key = models.CharField(max_length=100)
    kind = models.CharField(max_length=20)
    title = models.CharField(max_length=200, blank=True, default="")
    config = models.JSONField(default=dict, blank=True)
    position = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["version", "key"], name="node_key_unique_in_version")]

    def __str__(self) -> str:
        return f"{self.key} ({self.kind})"


class Edge(models.Model):
    version = models.ForeignKey(FlowVersion, on_delete=models.CASCADE, related_name="edges")
    from_key = models.CharField(max_length=100)
    port = models.CharField(max_length=100, default="next")
    to_key = models.CharField(max_length=100)

    class Meta:
        constraints = [
            # A port leads to one node at most.
            models.UniqueConstraint(fields=["version", "from_key", "port"], name="edge_one_per_port"),
        ]

    def __str__(self) -> str:
        return f"{self.from_key}.{self.port} → {self.to_key}"


class Run(models.Model):
    """One pass of one customer through a flow."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"  # at node_key, to be processed at due_at
        WAITING = "waiting", "Waiting"  # inside a wait node until due_at
        COMPLETED = "completed", "Completed"
        STOPPED = "stopped", "Stopped"

    # No index of their own: run_flow_status_idx and run_customer_idx start
    # with these columns, and every index costs each of the million inserts.
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="runs", db_index=False)
    version = models.ForeignKey(FlowVersion, on_delete=models.CASCADE, related_name="runs")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="runs", db_index=False)
    # Indexed by run_trigger_event_idx, only where set: runs an audience
    # starts (a schedule, run_flow) have none, and each of their millions of
    # inserts and updates would otherwise add a NULL entry to that index.
    trigger_event = models.ForeignKey(
        Event, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    is_test = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    node_key = models.CharField(max_length=100)
    # When the engine should next look at this run (None once it has ended).
    due_at = models.DateTimeField(null=True, blank=True)
    # The run's own clock (SPEC §5 "Flow time").
    clock = models.DateTimeField()
    # The clock when the run reached its current node (relevance counts from it).
    node_clock = models.DateTimeField(null=True, blank=True)
    # When the run reached its current node (the node pass is written on exit).
    node_entered_at = models.DateTimeField(default=now)
    # Number of node passes so far; the pass number of the current node.
    seq = models.PositiveIntegerField(default=0)
    # A steps group of this run executed (the run counts as a launch).
    launched = models.BooleanField(default=False)
    entered_at = models.DateTimeField(default=now)
    ended_at = models.DateTimeField(null=True, blank=True)
    stop_reason = models.CharField(max_length=40, blank=True, default="")
    # Why the engine stopped the run when stop_reason is `engine_error`: an
    # unexpected error while processing it alone ("OverflowError: … (at node
    # 'cap' (limitation))"), shown on the monitoring page and in its activity.
    # db_default: the engine inserts runs with raw INSERT … SELECT statements.
    error = models.TextField(blank=True, default="", db_default="")

    class Meta:
        indexes = [
            # The timer sweep: runs in flight that are due. Ended runs (the vast
            # majority over time) are not in this index at all. `id` too, in
            # the claim's ORDER BY due_at, id: a whole audience shares one
            # due_at, and without it every claim of 2,000 read and sorted all
            # of them (a million rows per batch at N = 1,000,000).
            models.Index(
                fields=["due_at", "id"],
                name="run_due_id_idx",
                condition=Q(status__in=["active", "waiting"]),
            ),
            models.Index(fields=["customer", "entered_at"], name="run_customer_idx"),
            models.Index(fields=["flow", "status"], name="run_flow_status_idx"),
            # Deleting an event sets its runs' trigger_event to NULL: found here.
            models.Index(
                fields=["trigger_event"],
                name="run_trigger_event_idx",
                condition=Q(trigger_event__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.customer_id} in {self.flow_id}"


class FirePart(models.Model):
    """One part of a schedule fire still to enter (flows/nodes/schedule/parts.py):
    the audience customers with after_id < id <= upto_id enter the version with
    the fire's run clock. Plain rows, so any worker takes any part (SKIP
    LOCKED) and a part whose worker died is taken again; a part is deleted in
    the transaction that enters it."""

    version = models.ForeignKey(FlowVersion, on_delete=models.CASCADE, related_name="fire_parts")
    # The run clock of the fire (its scheduled time).
    clock = models.DateTimeField()
    after_id = models.BigIntegerField()
    upto_id = models.BigIntegerField()
    # Customers the whole fire took when it started (all its parts).
    fire_size = models.PositiveIntegerField(default=0)
    # Attempts that raised; the fire's remaining parts are dropped at the limit.
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=now)

    def __str__(self) -> str:
        return f"part ({self.after_id}, {self.upto_id}] of version {self.version_id} at {self.clock}"


class NodePass(models.Model):
    """What happened: one node passed by one run (customer activity, SPEC §10)."""

    # Indexed by node_pass_once (run, pass_no); a second index would only slow the inserts.
    # No foreign-key constraint in the database on either key (db_constraint=False):
    # PostgreSQL checks one per key and row at every commit (a trigger and a
    # query each), which cost more than writing the passes themselves, the
    # engine's most written rows. Nothing can point them nowhere: passes are
    # written only for runs the writer holds in the same transaction (with the
    # run's own version), and runs, versions and flows are only deleted through
    # the ORM, which deletes their passes (on_delete=CASCADE is Django's, not
    # the database's) — tests/flows/test_node_pass_keys.py.
    run = models.ForeignKey(
        Run, on_delete=models.CASCADE, related_name="passes", db_index=False, db_constraint=False
    )
    version = models.ForeignKey(FlowVersion, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    node_key = models.CharField(max_length=100)
    kind = models.CharField(max_length=20)
    pass_no = models.PositiveIntegerField()
    at = models.DateTimeField(default=now)
    # The exit port taken; empty while the run is still inside the node.
    port = models.CharField(max_length=100, blank=True, default="")
    exited_at = models.DateTimeField(null=True, blank=True)
    stop_reason = models.CharField(max_length=40, blank=True, default="")

    class Meta:
        verbose_name_plural = "node passes"  # not Django's "node passs"
        constraints = [
            # Re-processing a batch cannot record a pass twice.
            models.UniqueConstraint(fields=["run", "pass_no"], name="node_pass_once"),
        ]
        indexes = [models.Index(fields=["at"], name="node_pass_at_idx")]


class LaunchRecord(models.Model):
    """Per flow and customer: how often the flow launched for them (SPEC §6).
    Survives every edit of the flow."""

    # No index of its own: launch_record_unique starts with it (every index
    # costs each first launch of a million-customer audience).
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="launch_records", db_index=False)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="launch_records")
    launches = models.PositiveIntegerField(default=0)
    first_launched_at = models.DateTimeField(null=True, blank=True)
    last_step_at = models.DateTimeField(null=True, blank=True)
    # The values before the latest launch, so a steps group that fails on the
    # spot can give its launch back inside the same transaction.
    prev_last_step_at = models.DateTimeField(null=True, blank=True)
    # The run that took the latest launch (set by the atomic re-check).
    last_run_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["flow", "customer"], name="launch_record_unique")]


class LimitationCounter(models.Model):
    """Places used in one window of a limitation node. The `signature` encodes
    mode and period: changing them starts a new counter, changing `max` does not."""

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="limitation_counters")
    node_key = models.CharField(max_length=100)
    signature = models.CharField(max_length=100)
    # Start of the counting window; 1970-01-01 UTC for "all time" (no period).
    window_start = models.DateTimeField()
    used = models.PositiveIntegerField(default=0)
    alerted = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["flow", "node_key", "signature", "window_start"],
                name="limitation_counter_unique",
            ),
        ]


class LimitationGrant(models.Model):
    """A place taken by one pass of a run: reserved when the run passes the
    limitation node, consumed when a steps group executes, released (deleted)
    when the run ends without one."""

    class State(models.TextChoices):
        RESERVED = "reserved", "Reserved"
        CONSUMED = "consumed", "Consumed"

    counter = models.ForeignKey(LimitationCounter, on_delete=models.CASCADE, related_name="grants")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="limitation_grants")
    pass_no = models.PositiveIntegerField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.RESERVED)
    granted_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "pass_no"], name="limitation_grant_once")]
        indexes = [
            models.Index(fields=["run"], name="limitation_reserved_idx", condition=Q(state="reserved")),
        ]


class ABAssignment(models.Model):
    """Sticky A/B variant of a customer at an A/B node (same key across versions)."""

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="ab_assignments")
    node_key = models.CharField(max_length=100)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    variant = models.CharField(max_length=100)
    assigned_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["flow", "node_key", "customer"], name="ab_assignment_unique"),
        ]


class ABWinner(models.Model):
    """The winner of an A/B node (SPEC §13), picked by the two-proportion
    test (flows/engine/ab_winner.py) and recorded once per (flow, node key):
    the unique constraint keeps a crash or a second worker from recording
    another. `counts` holds every variant's figures at that moment
    [{variant, control, entered, converted, rate, p_value}], the p-value
    being the comparison with the winner."""

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="ab_winners")
    node_key = models.CharField(max_length=100)
    version = models.ForeignKey(FlowVersion, on_delete=models.CASCADE, related_name="+")
    variant = models.CharField(max_length=100)
    metric = models.CharField(max_length=10)
    confidence = models.FloatField()
    # The largest p-value of the winner's comparisons (each below 1 - confidence).
    p_value = models.FloatField()
    counts = models.JSONField(default=list)
    decided_at = models.DateTimeField(default=now)

    class Meta:
        verbose_name = "A/B winner"
        constraints = [
            models.UniqueConstraint(fields=["flow", "node_key"], name="ab_winner_once"),
        ]


class NodeStat(models.Model):
    """Hourly counters per node (entered, exit:<port>, stop:<reason>, ...).
    Test runs count apart."""

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="node_stats")
    node_key = models.CharField(max_length=100)
    hour = models.DateTimeField()
    metric = models.CharField(max_length=120)
    is_test = models.BooleanField(default=False)
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["flow", "node_key", "hour", "metric", "is_test"], name="node_stat_bucket_unique"
            ),
        ]
