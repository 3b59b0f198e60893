"""What `fuzzer init` prints for each endpoint it sent: for one it keeps, the status of
the request that wrote, not that of its simplest request (refused, it wrote nothing)."""

from __future__ import annotations

from typing import Any

from fuzzer.init.spec import write_spec


def test_a_kept_endpoint_is_described_by_the_request_that_wrote(tmp_path: Any) -> None:
    written = write_spec("targets.tryout_kudos:create_app", str(tmp_path / "fuzz_kudos.py"))
    # its simplest request names no other member (400); another gives kudos (201)
    line = written.survey["POST /api/kudos"]
    assert line.startswith("201; writes kudos, members"), line
    assert "POST /api/kudos" in (written.plan.writers or ())
    # an endpoint that wrote nothing keeps its simplest request's status, and why
    assert written.plan.left_out["GET /api/kudos"].startswith("200 as mara; read only")
