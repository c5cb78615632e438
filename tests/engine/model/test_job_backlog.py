"""``max_backlog``: a serial job's bound on slots waiting beyond ``max_instances``."""

import pytest

from distsched.jobs import load_jobs_file
from distsched.model import ValidationError, build_job
from distsched.model.job import DEFAULT_MAX_BACKLOG, TaskConfig


def test_max_backlog_defaults_and_round_trips():
    job = build_job("s", every="1s", target="noop", overlap="serial")
    assert job.overlap.max_backlog == DEFAULT_MAX_BACKLOG == 100
    assert job.overlap.serial_backlog == 100
    assert build_job("p", every="1s", target="noop").overlap.serial_backlog is None, "read by serial only"
    kept = TaskConfig.from_dict(build_job("s", every="1s", target="noop", overlap="serial", max_backlog=0).to_dict())
    assert kept.overlap.max_backlog == 0
    old = build_job("s", every="1s", target="noop", overlap="serial").to_dict()
    del old["overlap"]["max_backlog"]  # a job stored before the setting existed
    assert TaskConfig.from_dict(old).overlap.max_backlog == DEFAULT_MAX_BACKLOG


@pytest.mark.parametrize("bad", [-1, 1_000_001, 2.5, "10", True, None])
def test_a_bad_max_backlog_is_refused_naming_the_field(bad):
    with pytest.raises(ValidationError) as info:
        build_job("s", every="1s", target="noop", overlap="serial", max_backlog=bad)
    assert info.value.field == "max_backlog"
    assert "between 0 and 1000000" in str(info.value)


def test_the_jobs_file_takes_max_backlog(tmp_path):
    path = tmp_path / "jobs.toml"
    path.write_text('[[jobs]]\nname = "s"\nevery = "1s"\ntarget = "noop"\noverlap = "serial"\nmax_backlog = 7\n')
    (job,) = load_jobs_file(path).jobs
    assert job.overlap.max_backlog == 7
