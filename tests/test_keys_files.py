"""`parsefl keys init` trusts nothing already on disk: it never writes through a planted file
or link, never reuses a file another user can read, never replaces a CA without --force,
keeps private/ at 0700; and Identities refuses a private key others may read (issue 23)."""

from __future__ import annotations

import os
import stat
import sys

import pytest
from console import parsefl, refused

from parsefl.errors import ConfigError
from parsefl.security import Identities, init_keys
from parsefl.security.keys import MAX_AGENTS

posix = pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes and links")


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@posix
def test_a_planted_link_or_file_is_refused_and_force_unlinks_it(tmp_path):
    keys, target = tmp_path / "k", tmp_path / "target"
    target.write_text("not yours\n")
    (keys / "private").mkdir(parents=True)
    link = keys / "private" / "agent_0000.key"
    link.symlink_to(target)
    refused(parsefl("keys", "init", str(keys), "--agents", "2"), str(link), "--force")
    assert target.read_text() == "not yours\n" and not (keys / "ca.key").exists()

    assert parsefl("keys", "init", str(keys), "--agents", "2", "--force").returncode == 0
    assert target.read_text() == "not yours\n"  # the link was unlinked, not written through
    assert not link.is_symlink() and _mode(link) == 0o600 and _mode(keys / "private") == 0o700

    (keys / "peers.json").unlink()  # a re-init must not silently replace the CA
    ca = (keys / "ca.key").read_bytes()
    refused(parsefl("keys", "init", str(keys), "--agents", "2"), str(keys / "ca.key"))
    assert (keys / "ca.key").read_bytes() == ca


@posix
def test_a_world_readable_key_file_is_not_reused_and_private_is_0700(tmp_path):
    keys = tmp_path / "k"
    (keys / "private").mkdir(parents=True, mode=0o777)
    os.chmod(keys / "private", 0o777)
    stale = keys / "private" / "agent_0001.key"
    stale.write_bytes(b"")
    os.chmod(stale, 0o644)
    with pytest.raises(ConfigError, match="agent_0001.key already exists"):
        init_keys(keys, 2)
    init_keys(keys, 2, force=True)
    assert _mode(keys / "private") == 0o700
    assert {_mode(p) for p in (keys / "private").iterdir()} == {0o600}
    assert _mode(keys / "ca.key") == 0o600


@posix
def test_private_as_a_link_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "agent_0000.key").write_text("someone else's\n")
    (tmp_path / "k").mkdir(mode=0o750)
    (tmp_path / "k" / "private").symlink_to(elsewhere)
    with pytest.raises(ConfigError, match="private must be a directory, not a link"):
        init_keys(tmp_path / "k", 1, force=True)  # --force must not unlink through the link
    assert [p.name for p in elsewhere.iterdir()] == ["agent_0000.key"]
    assert not (tmp_path / "k" / "ca.key").exists()
    (tmp_path / "k" / "private").unlink()
    init_keys(tmp_path / "k", 1)
    assert _mode(tmp_path / "k") == 0o750 & ~_umask()  # the user's own folder is left alone


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


@posix
def test_identities_refuses_a_private_key_others_may_read_or_a_link(tmp_path):
    keys = tmp_path / "k"
    init_keys(keys, 2)
    key = keys / "private" / "agent_0001.key"
    os.chmod(key, 0o640)
    with pytest.raises(ConfigError, match=r"agent_0001.key: mode 0640: group or others"):
        Identities(keys, [1])
    os.chmod(key, 0o600)
    Identities(keys, [1])
    moved = tmp_path / "moved.key"
    key.rename(moved)
    key.symlink_to(moved)
    with pytest.raises(ConfigError, match=r"agent_0001.key: is a symbolic link"):
        Identities(keys, [1])
    key.unlink()
    os.mkfifo(key, 0o600)  # a FIFO would block a plain open: refused at once
    with pytest.raises(ConfigError, match=r"agent_0001.key: is not a regular file"):
        Identities(keys, [1])


def test_agent_counts_beyond_the_bound_are_refused_at_once(tmp_path):
    line = refused(parsefl("keys", "init", str(tmp_path / "k"), "--agents", "10000000",
                           timeout=30), "--agents", str(MAX_AGENTS))
    assert "10000000" in line and not (tmp_path / "k").exists()
    refused(parsefl("keys", "init", str(tmp_path / "k"), "--agents", "1e7", timeout=30),
            "--agents")
