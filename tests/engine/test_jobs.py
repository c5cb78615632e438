"""The TOML jobs file: every problem reported at once, naming job, field and reason."""

import textwrap

import pytest

from distsched.jobs import JobsFileError, import_task_modules, load_jobs_file
from distsched.model import CronTrigger, EveryTrigger, ValidationError


def write(tmp_path, text, name="jobs.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_the_example_file_loads():
    jobs = load_jobs_file("examples/jobs.toml")
    names = [j.name for j in jobs.jobs]
    assert names == ["tick", "flaky", "slow", "http-ping", "nightly-report"]
    flaky = jobs.job("flaky")
    assert flaky.spec.retry.max_attempts == 3 and flaky.spec.retry.delay == 0.5
    assert isinstance(jobs.job("nightly-report").trigger, CronTrigger)
    assert jobs.worker.imports == ("tasks",) and jobs.worker.concurrency == 4


def test_every_field_is_read(tmp_path):
    path = write(tmp_path, """
        [worker]
        imports = ["mod"]
        concurrency = 3
        http_allow = ["127.0.0.1"]

        [[jobs]]
        name = "full"
        every = "1m30s"
        timezone = "Europe/Paris"
        executor = "local"
        target = "f"
        args = [1, "two"]
        kwargs = { k = true }
        timeout = "45s"
        balancer = "consistent-hash"
        balance_key = "tenant-1"
        retry = { max_attempts = 4, backoff = "fixed", delay = "2s", max_delay = "10s", jitter = 0.1 }
        enabled = false
        misfire = "skip"
        misfire_grace = "5s"
        overlap = "serial"
        max_instances = 2
        description = "everything"
    """)
    [job] = load_jobs_file(path).jobs
    assert isinstance(job.trigger, EveryTrigger) and job.trigger.interval == 90
    assert job.spec.args == (1, "two") and job.spec.kwargs == {"k": True}
    assert job.spec.timeout == 45 and job.spec.balancer == "consistent-hash" and job.spec.balance_key == "tenant-1"
    assert (job.spec.retry.max_attempts, job.spec.retry.backoff, job.spec.retry.delay) == (4, "fixed", 2.0)
    assert not job.enabled and job.misfire.mode == "skip" and job.misfire.grace == 5
    assert job.overlap.mode == "serial" and job.overlap.max_instances == 2
    settings = load_jobs_file(path).worker.settings
    assert settings == {"http_allow": ["127.0.0.1"]}


@pytest.mark.parametrize("value", ['"0s"', "0"])
def test_a_drain_timeout_of_zero_reads_as_the_option_does(tmp_path, value):
    """`[worker] drain_timeout = 0` (or "0s") is what `--drain-timeout 0` is: stop at once.
    The table held it to an interval's range (0.01 s to 366 d) and refused it."""
    path = write(tmp_path, f"[worker]\ndrain_timeout = {value}\n")
    assert load_jobs_file(path).worker.drain_timeout == 0


def test_all_problems_are_reported_with_job_field_and_reason(tmp_path):
    path = write(tmp_path, """
        [[jobs]]
        name = "a"
        cron = "61 * * * *"

        [[jobs]]
        name = "b"
        every = "10s"
        timout = 5

        [[jobs]]
        name = "c"
        every = "10s"
        cron = "* * * * *"

        [[jobs]]
        name = "d"
        every = "soon"

        [[jobs]]
        name = "e"
        every = "1s"
        timeout = -1

        [[jobs]]
        name = "f"
        every = "1s"
        retry = { max_attempts = 1000000 }

        [[jobs]]
        name = "a"
        every = "1s"

        [[jobs]]
        every = "1s"
    """)
    with pytest.raises(JobsFileError) as err:
        load_jobs_file(path)
    problems = err.value.problems
    text = "\n".join(problems)
    assert "job 'a': cron: invalid expression '61 * * * *'" in text
    assert "job 'b': timout: unknown field (did you mean 'timeout'?)" in text
    assert "job 'c': cron/every/at: give exactly one of cron, every, at" in text
    assert "job 'd': every: must be a duration" in text
    assert "job 'e': timeout:" in text
    assert "job 'f': retry.max_attempts: must be between 1 and 1000" in text
    assert "job 'a': name: duplicate job name" in text
    assert "jobs[7]: name: missing" in text
    assert len(problems) == 8


@pytest.mark.parametrize("text, expected", [
    ("[[jobs]\nname=", "invalid TOML"),
    ("jobs = 3", "must be an array of tables"),
    ("[workers]\n", "unknown top-level key 'workers' (did you mean 'worker'?)"),
    ("[worker]\nconcurrency = 0", "[worker]: concurrency: must be an integer"),
    ("[worker]\nconcurrency = 20000", "[worker]: concurrency: must be an integer between 1 and 10000, not 20000"),
    ("[worker]\nconcurrency = 8\ncapacity = 2", "[worker]: capacity: must be at least concurrency (8), not 2"),
])
def test_bad_files(tmp_path, text, expected):
    with pytest.raises(JobsFileError) as err:
        load_jobs_file(write(tmp_path, text))
    assert expected in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(JobsFileError, match="file not found"):
        load_jobs_file(tmp_path / "nope.toml")


def test_task_modules_resolve_next_to_the_jobs_file(tmp_path, monkeypatch):
    (tmp_path / "my_jobs_tasks_mod.py").write_text(
        "from distsched import task\n@task\ndef hello():\n    return 1\n@task(name='other')\ndef f():\n    return 2\n")
    monkeypatch.chdir("/")
    found = {}
    names = import_task_modules(["my_jobs_tasks_mod"], base=tmp_path, register=found.__setitem__)
    assert sorted(names) == ["hello", "other"] and found["hello"]() == 1
    with pytest.raises(ValidationError, match="cannot import 'no_such_tasks_mod'"):
        import_task_modules(["no_such_tasks_mod"], base=tmp_path, register=found.__setitem__)


def test_an_integer_balance_key_is_refused_at_load(tmp_path):
    """It used to load, then crash every leader pass in consistent-hash (issue 16.2)."""
    path = write(tmp_path, """
        [[jobs]]
        name = "hashed"
        every = "1s"
        target = "noop"
        balancer = "consistent-hash"
        balance_key = 5
    """)
    with pytest.raises(JobsFileError) as err:
        load_jobs_file(path)
    assert "job 'hashed': balance_key: must be a string, not int 5" in str(err.value)


@pytest.mark.parametrize("kind", ["device", "fifo", "directory"])
def test_a_jobs_file_that_is_not_a_regular_file_is_refused_at_once(tmp_path, kind):
    """/dev/zero used to be read until memory ran out; a FIFO blocked forever (issue 16.6)."""
    import os

    if kind == "device":
        path = "/dev/zero"
    elif kind == "fifo":
        path = tmp_path / "jobs.fifo"
        os.mkfifo(path)
    else:
        path = tmp_path
    with pytest.raises(JobsFileError) as err:
        load_jobs_file(path)
    assert "must be a regular file" in str(err.value)


def test_distsched_run_on_dev_zero_is_one_line(distsched_cli):
    result = distsched_cli("run", "/dev/zero", "--duration", "0")
    assert result.exit_code != 0
    assert "must be a regular file" in result.output and "Traceback" not in result.output


def test_a_task_module_that_exits_on_import_is_named(tmp_path, monkeypatch, distsched_cli):
    """A module imported by the worker that called ``sys.exit(3)`` on import made
    ``distsched worker`` exit 3 saying nothing (probe finding): a clear error names the
    module and the call, and the worker exits non-zero without starting."""
    import sys

    (tmp_path / "exits_on_import_mod.py").write_text("import sys\nsys.exit(3)\n")
    (tmp_path / "jobs.toml").write_text('[worker]\nimports = ["exits_on_import_mod"]\n')
    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(ValidationError) as err:
        import_task_modules(["exits_on_import_mod"], base=tmp_path, register=lambda *a: None)
    assert err.value.field == "imports"
    assert "cannot import 'exits_on_import_mod'" in str(err.value) and "called sys.exit(3) when imported" in str(err.value)
    monkeypatch.chdir(tmp_path)
    for args in (["--import", "exits_on_import_mod"], ["--jobs", str(tmp_path / "jobs.toml")]):
        result = distsched_cli("worker", "--storage", "memory://exits", *args)
        assert result.exit_code == 1, (args, result.exit_code, result.output)
        assert "cannot import 'exits_on_import_mod'" in result.output, result.output
        assert "called sys.exit(3) when imported" in result.output and "Traceback" not in result.output


def test_an_import_error_without_a_message_names_its_kind_alone(tmp_path, monkeypatch):
    import sys

    (tmp_path / "raises_bare_mod.py").write_text("raise RuntimeError()\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(ValidationError) as err:
        import_task_modules(["raises_bare_mod"], base=tmp_path, register=lambda *a: None)
    assert str(err.value).endswith("cannot import 'raises_bare_mod' (looked in "
                                   f"{tmp_path} and the current directory): RuntimeError")


def test_two_task_modules_giving_one_name_to_two_functions_are_refused(tmp_path, monkeypatch):
    """The worker's registry refuses the second, naming both functions; a module that
    re-exports another's function gives the same function: fine."""
    import sys

    from distsched.facade import DistributeSchedule, functions_in_module
    from distsched.model import DuplicateRegistration

    (tmp_path / "first_tasks_mod.py").write_text("from distsched import task\n@task\ndef hello():\n    return 1\n")
    (tmp_path / "reexports_tasks_mod.py").write_text("from first_tasks_mod import hello\n")
    (tmp_path / "second_tasks_mod.py").write_text("from distsched import task\n@task\ndef hello():\n    return 2\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    app = DistributeSchedule("memory://two-modules")
    names = import_task_modules(["first_tasks_mod", "reexports_tasks_mod"], base=tmp_path,
                                register=app.functions.add, collect=functions_in_module)
    assert names == ["hello", "hello"] and app.function_names() == ["hello"]
    with pytest.raises(DuplicateRegistration, match="'hello' is given to two different functions, "
                                                    "first_tasks_mod:hello and second_tasks_mod:hello"):
        import_task_modules(["second_tasks_mod"], base=tmp_path, register=app.functions.add,
                            collect=functions_in_module)
