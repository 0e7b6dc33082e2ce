"""The desktop commands (`musicsync login`, `ls`, `push`, `pull`, ...) run as a person runs
them: `python -m musicsync.cli` in a subprocess, against a real server on loopback, with
the configuration folder in tmp_path."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import stat
import sys

import pytest

from musicsync.cli import build_parser
from musicsync.client import Client, NotSignedIn
from musicsync.client.credentials import Credentials, CredentialsStore
from musicsync.client.tokens import Tokens

from .client_support import Cli, RestartableServer, sha, song_file, target_of
from .conftest import PASSWORD, REGISTRATION_KEY
from .helpers import free_port

DAY = 24 * 3600


# -- login, whoami, logout ---------------------------------------------------------------

async def test_login_keeps_the_sign_in_in_a_private_file_and_whoami_names_it(app, library, cli):
    code, out, err = await cli("login", target_of(app), "--user", "alice", "--password-stdin",
                               stdin=PASSWORD + "\n")
    assert code == 0, err
    assert f"signed in as alice at {target_of(app)}" in out
    path = cli.config / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.config.stat().st_mode) == 0o700
    assert PASSWORD not in path.read_text()
    saved = cli.credentials()
    assert (saved.server, saved.username, saved.tls) == (target_of(app), "alice", False)
    assert saved.tokens.refresh_token and saved.device_id
    code, out, _ = await cli("whoami")
    assert code == 0 and out.strip() == f"alice at {target_of(app)}"


async def test_login_with_a_wrong_password_exits_1_with_the_reason(app, library, cli):
    code, out, err = await cli("login", target_of(app), "--user", "alice", "--password-stdin",
                               stdin="not the password\n")
    assert code == 1
    assert "refused the sign-in of alice: invalid credentials" in err
    assert cli.credentials() is None


async def test_login_to_a_server_that_is_down_names_the_address(cli):
    address = f"127.0.0.1:{free_port()}"
    code, _, err = await cli("login", address, "--user", "alice", "--password-stdin",
                             stdin=PASSWORD + "\n")
    assert code == 1 and f"cannot reach the musicsync server at {address}" in err
    assert cli.credentials() is None


async def test_commands_before_login_exit_2_saying_to_log_in(cli, tmp_path):
    for command in (["ls"], ["push", str(tmp_path)], ["pull", "x"], ["rm", "x"],
                    ["sync", str(tmp_path)]):
        code, _, err = await cli(*command)
        assert code == 2 and "run `musicsync login SERVER`" in err, command
    code, _, err = await cli("whoami")
    assert code == 1 and "not signed in" in err


async def test_an_expired_access_token_is_refreshed_and_the_new_pair_kept(app, clock, logged_in):
    before = logged_in.credentials().tokens
    clock.advance(2 * 3600)
    code, _, err = await logged_in("ls")
    assert code == 0, err
    after = logged_in.credentials().tokens
    assert after.refresh_token != before.refresh_token
    assert after.access_expires_at > before.access_expires_at


async def test_an_ended_sign_in_exits_2_saying_to_log_in_again(app, clock, logged_in):
    clock.advance(31 * DAY)
    code, _, err = await logged_in("ls")
    assert code == 2 and "run `musicsync login SERVER` again" in err


async def test_logout_ends_the_sign_in_on_the_server_and_forgets_it(app, clock, logged_in):
    tokens = logged_in.credentials().tokens
    code, out, err = await logged_in("logout")
    assert code == 0 and "ended on the server" in out, err
    assert logged_in.credentials() is None
    clock.advance(2 * 3600)
    async with Client(target_of(app), tokens=tokens) as client:
        with pytest.raises(NotSignedIn):
            await client.stat([sha(b"x")])


async def test_logout_with_the_server_down_still_forgets_the_sign_in(cli):
    CredentialsStore(cli.config).save(Credentials(
        server=f"127.0.0.1:{free_port()}", username="alice",
        tokens=Tokens("access", 0, "refresh", 2**40), device_id="d", device_name="n"))
    code, out, err = await cli("logout")
    assert code == 0 and "could not end the sign-in on the server" in err
    assert cli.credentials() is None and "forgotten here" in out


# -- the library -------------------------------------------------------------------------

async def test_push_ls_pull_rm_round_trip(logged_in, tmp_path):
    here = tmp_path / "here"
    first, second = song_file(here, "one.wav"), song_file(here, "two.wav", seconds=2)
    code, out, err = await logged_in("push", str(second), str(first))
    assert code == 0, err
    assert "uploaded" in out and "one.wav" in out and "two.wav" in out

    code, out, _ = await logged_in("ls", "--json")
    listed = {song["path"]: song for song in json.loads(out)}
    assert code == 0 and set(listed) == {"one.wav", "two.wav"}
    assert listed["two.wav"]["size"] == second.stat().st_size
    assert listed["one.wav"]["hash"] == sha(first.read_bytes())
    code, out, _ = await logged_in("ls")  # not a terminal: one tab-separated line a song
    assert [line.split("\t")[0] for line in out.splitlines()] == ["one.wav", "two.wav"]

    there = tmp_path / "there"
    code, out, err = await logged_in("pull", "one.wav", listed["two.wav"]["hash"],
                                     "-o", str(there))
    assert code == 0, err
    assert (there / "one.wav").read_bytes() == first.read_bytes()
    assert (there / "two.wav").read_bytes() == second.read_bytes()
    assert sorted(p.name for p in there.iterdir()) == ["one.wav", "two.wav"]  # no partials

    code, out, err = await logged_in("rm", "one.wav")
    assert code == 0 and "removed one.wav" in out, err
    code, out, _ = await logged_in("ls", "--json")
    assert [song["path"] for song in json.loads(out)] == ["two.wav"]


async def test_push_reports_each_failure_and_uploads_the_rest(logged_in, tmp_path):
    good = song_file(tmp_path, "good.wav")
    (tmp_path / "notes.txt").write_text("not a song " * 100)
    code, out, err = await logged_in("push", str(tmp_path / "notes.txt"), str(good),
                                     str(tmp_path / "missing.wav"))
    assert code == 1
    assert "2 failed" in err and "notes.txt" in err and "missing.wav: not a file" in err
    assert "uploaded" in out and "good.wav" in out
    code, out, _ = await logged_in("ls", "--json")
    assert [song["path"] for song in json.loads(out)] == ["good.wav"]


async def test_pull_leaves_a_different_local_file_alone(logged_in, tmp_path):
    await logged_in("push", str(song_file(tmp_path / "src", "song.wav")))
    there = tmp_path / "there"
    there.mkdir()
    (there / "song.wav").write_bytes(b"my own file")
    code, _, err = await logged_in("pull", "song.wav", "-o", str(there))
    assert code == 1 and "a different file is there; not overwritten" in err
    assert (there / "song.wav").read_bytes() == b"my own file"


async def test_pull_and_rm_of_unknown_songs_fail_naming_them(logged_in, tmp_path):
    code, _, err = await logged_in("pull", "nothing.wav", "-o", str(tmp_path / "out"))
    assert code == 1 and "nothing.wav: no such song in your library" in err
    code, _, err = await logged_in("rm", sha(b"nothing"))
    assert code == 1 and "no such song in your library" in err


async def test_watch_prints_each_change_as_it_happens(app, library, logged_in, tmp_path):
    process = await logged_in.start("watch")
    try:
        started = await asyncio.wait_for(process.stdout.readline(), 30)
        assert b"watching" in started, await process.stderr.read()
        uploaded = await library.upload(song_file(tmp_path, "live.wav"))
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert "added" in line and "live.wav" in line and uploaded.hash[:12] in line
        await library.delete(uploaded.hash)
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert "deleted" in line and uploaded.hash[:12] in line
    finally:
        process.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(process.wait(), 30)
    assert code == 0


async def test_watch_reconnects_after_a_server_restart_and_goes_on_from_its_cursor(tmp_path):
    async with RestartableServer(tmp_path) as server:
        cli = Cli(tmp_path / "config")
        library = Client(server.target)
        await library.register("alice", PASSWORD, REGISTRATION_KEY)
        code, _, err = await cli("login", server.target, "--user", "alice",
                                 "--password-stdin", stdin=PASSWORD + "\n")
        assert code == 0, err
        process = await cli.start("watch")
        try:
            assert b"watching" in await asyncio.wait_for(process.stdout.readline(), 30)
            before = await library.upload(song_file(tmp_path, "before.wav"))
            line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
            assert "added" in line and "before.wav" in line
            server.stop()
            await server.start()
            after = await library.upload(song_file(tmp_path, "after.wav"))
            line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
            assert "added" in line and "after.wav" in line and after.hash[:12] in line
        finally:
            await library.close()
            process.send_signal(signal.SIGINT)
            code = await asyncio.wait_for(process.wait(), 30)
        err = (await process.stderr.read()).decode()
    assert code == 0, err
    cursor = line.rsplit("cursor=", 1)[1].strip()
    assert f"reconnecting from cursor {int(cursor) - 1}" in err, err
    assert before.hash[:12] not in (await process.stdout.read()).decode()  # not shown twice


async def test_watch_without_since_starts_at_the_newest_change_without_reading_the_feed(
        app, library, logged_in, tmp_path):
    for i in range(40):
        await library.upload(song_file(tmp_path, f"old{i}.wav"))
    process = await logged_in.start("watch")
    try:
        started = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert "from cursor 40;" in started, started
        uploaded = await library.upload(song_file(tmp_path, "new.wav"))
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert "new.wav" in line and uploaded.hash[:12] in line and "cursor=41" in line
    finally:
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 30) == 0


# -- sync's arguments, and what the client commands load ---------------------------------

def test_sync_arguments_are_parsed():
    args = build_parser().parse_args([
        "sync", "Music", "--dry-run", "--direction", "pull", "--no-delete", "--jobs", "3",
        "--watch", "--max-delete", "20%", "--force", "--quiet", "--json"])
    assert (args.dir, args.dry_run, args.direction, args.no_delete, args.jobs, args.watch,
            args.max_delete, args.force, args.quiet, args.json) == (
        "Music", True, "pull", True, 3, True, 20.0, True, True, True)
    defaults = build_parser().parse_args(["sync", "Music"])
    assert (defaults.direction, defaults.no_delete, defaults.jobs, defaults.max_delete,
            defaults.force, defaults.dry_run) == ("both", False, 4, 50.0, False, False)
    for bad in (["--jobs", "0"], ["--direction", "sideways"], ["--max-delete", "150%"]):
        with pytest.raises(SystemExit) as usage:
            build_parser().parse_args(["sync", "Music", *bad])
        assert usage.value.code == 2


async def test_the_cli_and_serve_do_not_load_the_client_dependencies():
    probe = ("import sys, musicsync.cli, musicsync.server; "
             "print(sorted(m for m in ('rich', 'platformdirs', 'watchfiles', "
             "'musicsync.client.api') if m in sys.modules))")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", probe, stdout=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    assert out.decode().strip() == "[]"


async def test_client_commands_do_not_load_the_database_layer(cli):
    probe = ("import sys, runpy; sys.argv = ['musicsync', 'whoami']\n"
             "try:\n    runpy.run_module('musicsync.cli', run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "print('sqlalchemy' in sys.modules)")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", probe, env=cli.env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    assert out.decode().split()[-1] == "False"


# -- TLS ---------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command is not installed")
async def test_login_over_tls_trusting_the_servers_self_signed_certificate(tmp_path, cli):
    from musicsync.server import App
    from musicsync.tls import self_signed_files

    from .conftest import REGISTRATION_KEY, make_settings

    async with App(make_settings(tmp_path / "data", tls="self-signed")) as app:
        cert = self_signed_files(tmp_path / "data").cert
        async with Client(target_of(app), root_certificates=cert.read_bytes()) as client:
            await client.register("alice", PASSWORD, REGISTRATION_KEY)
        code, _, err = await cli("login", target_of(app), "--user", "alice",
                                 "--password-stdin", stdin=PASSWORD + "\n")
        assert code == 1 and "needs --tls" in err  # plaintext to a TLS server
        code, out, err = await cli("login", target_of(app), "--user", "alice",
                                   "--tls-root", str(cert), "--password-stdin",
                                   stdin=PASSWORD + "\n")
        assert code == 0 and "(TLS)" in out, err
        code, out, err = await cli("ls", "--json")
        assert code == 0 and json.loads(out) == [], err
