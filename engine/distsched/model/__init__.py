"""The domain model: pure attrs objects, no I/O, no clock reads (time is passed in)."""

from .build import JOB_FIELDS, build_job, build_retry, check_task_id, first_fire, job_fields
from .due import past_at
from .errors import (
    AlreadyExists,
    DistschedError,
    DuplicateRegistration,
    FencedError,
    InvalidTransition,
    NameConflict,
    NotFound,
    PluginError,
    PluginLoadError,
    StaleAttempt,
    StartInterrupted,
    TaskCancelled,
    TaskSkipped,
    UnknownName,
    ValidationError,
    VersionConflict,
    WorkerFull,
)
from .events import Event
from .job import FirePlan, JobState, MisfirePolicy, OverlapPolicy, PlannedSlot, TaskConfig
from .result import MAX_LOG_BYTES, MAX_RESULT_BYTES, Outcome, TaskResult, clean_log, json_problem
from .retry import RetryPolicy
from .spec import TaskSpec, spec_json_cache
from .task import ASSIGNED, TERMINAL, TRANSITIONS, Task, TaskState, slot_task_id
from .trigger import AtTrigger, CronTrigger, EveryTrigger, Slot, Trigger, parse_duration
from .worker import Worker

__all__ = [
    "ASSIGNED", "JOB_FIELDS", "AlreadyExists", "DuplicateRegistration", "NameConflict", "PluginError",
    "PluginLoadError", "UnknownName", "AtTrigger", "CronTrigger", "DistschedError", "Event", "EveryTrigger",
    "FencedError", "FirePlan", "InvalidTransition", "JobState", "MisfirePolicy", "NotFound",
    "Outcome", "OverlapPolicy", "PlannedSlot", "RetryPolicy", "Slot", "StaleAttempt", "StartInterrupted", "TERMINAL", "TaskCancelled",
    "TaskSkipped",
    "TRANSITIONS", "Task", "TaskConfig", "TaskResult", "TaskSpec", "TaskState", "Trigger",
    "ValidationError", "VersionConflict", "Worker", "WorkerFull", "build_job", "build_retry", "check_task_id", "clean_log",
    "first_fire", "job_fields", "json_problem", "parse_duration", "past_at", "slot_task_id", "spec_json_cache", "MAX_LOG_BYTES", "MAX_RESULT_BYTES",
]
