"""``xcp-provision answerfile``: exit codes and messages, in-process and as the installed tool."""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import sys
import termios
import time
from pathlib import Path

from click.testing import CliRunner
from passlib.hash import sha512_crypt

from answerfiles.parse import parse_answerfile
from common import runner
from xcp_provision.main import main

HERE = Path(__file__).parent
VALID = HERE / "valid" / "xcpng-doc-fresh.xml"
INVALID = HERE / "invalid" / "static-no-gateway.xml"
COMMAND = Path(sys.executable).parent / "xcp-provision"
VARS = {"hostname": "xen-01", "primary_disk": "sda", "source_url": "http://repo.example.com/x/",
        "server_url": "https://prov.example.com/", "token": "abc"}


def invoke(*args: str, stdin: str | bytes | None = None):
    return CliRunner().invoke(main, ["answerfile", *args], input=stdin)


def test_validate_valid_file_exits_0_with_warnings_on_stderr() -> None:
    result = invoke("validate", str(VALID))
    assert result.exit_code == 0
    assert f"{VALID}: valid, mode fresh" in result.stdout
    assert f"{VALID}:7: installation/root-password: warning: plaintext" in result.stderr
    assert "mypassword" not in result.output


def test_validate_invalid_file_exits_1_with_every_error() -> None:
    result = invoke("validate", str(VALID), str(INVALID))
    assert result.exit_code == 1
    assert (f'{INVALID}:5: installation/admin-interface: proto="static" needs <gateway>'
            in result.stderr)
    assert f"{VALID}: valid" in result.stdout


def test_validate_reads_stdin() -> None:
    result = invoke("validate", "-", stdin=VALID.read_bytes())
    assert result.exit_code == 0
    assert "<stdin>: valid, mode fresh" in result.stdout
    bad = invoke("validate", "-", stdin=b"<installation><oops></installation>")
    assert bad.exit_code == 1
    assert "<stdin>:1: xml: not well-formed XML (mismatched tag)" in bad.stderr


def test_validate_usage_errors_exit_2(tmp_path: Path) -> None:
    assert invoke("validate").exit_code == 2
    missing = invoke("validate", str(tmp_path / "absent.xml"))
    assert missing.exit_code == 2
    assert "does not exist" in missing.stderr


def test_render_prints_validated_xml() -> None:
    args = [f"--var={k}={v}" for k, v in VARS.items()]
    result = invoke("render", "fresh-dhcp", *args)
    assert result.exit_code == 0, result.stderr
    assert parse_answerfile(result.stdout).answers.hostname == "xen-01"


def test_render_vars_from_json_and_toml_with_overrides(tmp_path: Path) -> None:
    as_json = tmp_path / "vars.json"
    as_json.write_text(json.dumps(VARS))
    as_toml = tmp_path / "vars.toml"
    as_toml.write_text("".join(f'{k} = "{v}"\n' for k, v in VARS.items()))
    for path in (as_json, as_toml):
        result = invoke("render", "upgrade", "--vars", str(path), "--var", "primary_disk=sdc")
        assert result.exit_code == 0, result.stderr
        assert parse_answerfile(result.stdout).answers.existing_installation == "sdc"


def test_render_errors_exit_1_with_a_clear_message() -> None:
    result = invoke("render", "fresh-static", *[f"--var={k}={v}" for k, v in VARS.items()])
    assert result.exit_code == 1
    assert "template 'fresh-static' for host 'xen-01'" in result.stderr
    assert "'ipaddr' is undefined" in result.stderr
    assert result.stdout == ""


def test_render_usage_errors_exit_2(tmp_path: Path) -> None:
    assert invoke("render", "fresh-dhcp", "--var", "novalue").exit_code == 2
    broken = tmp_path / "vars.json"
    broken.write_text("{not json")
    result = invoke("render", "fresh-dhcp", "--vars", str(broken))
    assert result.exit_code == 2
    assert "is not valid JSON" in result.stderr


def test_hash_password_from_stdin() -> None:
    result = invoke("hash-password", stdin="s3cret pass\n")
    assert result.exit_code == 0
    digest = result.stdout.strip()
    assert sha512_crypt.verify("s3cret pass", digest)
    assert "s3cret" not in result.output


def test_hash_password_refuses_argv_and_empty_input() -> None:
    assert invoke("hash-password", "s3cret").exit_code == 2
    empty = invoke("hash-password", stdin="\n")
    assert empty.exit_code == 1
    assert "empty" in empty.stderr


def test_installed_command_validate_exit_codes() -> None:
    ok = runner.run([COMMAND, "answerfile", "validate", VALID], check=False)
    assert ok.returncode == 0
    assert "warning: plaintext root password" in ok.stderr
    bad = runner.run([COMMAND, "answerfile", "validate", INVALID], check=False)
    assert bad.returncode == 1
    assert 'proto="static" needs <gateway>' in bad.stderr
    usage = runner.run([COMMAND, "answerfile", "validate"], check=False)
    assert usage.returncode == 2


def test_installed_command_hash_password_on_a_terminal() -> None:
    """On a terminal the password is asked twice and never echoed."""
    master, slave = os.openpty()

    def take_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = runner.start([COMMAND, "answerfile", "hash-password"], stdin=slave, stdout=slave,
                        stderr=slave, start_new_session=True, preexec_fn=take_terminal)
    os.close(slave)
    try:
        seen = _expect(master, "Root password: ")
        os.write(master, b"tty-secret\n")
        seen += _expect(master, "confirmation: ")
        os.write(master, b"tty-secret\n")
        seen += _expect(master, None)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert "tty-secret" not in seen
    digest = re.search(r"\$6\$\S+", seen).group(0)
    assert sha512_crypt.verify("tty-secret", digest)


def _expect(fd: int, text: str | None) -> str:
    """Read the terminal until ``text`` appears, or until the child closes it when None."""
    seen = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (text is None or text not in seen):
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096).decode()
        except OSError:  # the child exited and closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    assert text is None or text in seen, seen
    return seen
