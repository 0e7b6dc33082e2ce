"""The remembered-folder registry when several syncs start at once (e.g. two `sync --watch`)."""

from __future__ import annotations

import shutil
import threading

from musicsync.client.folder.guard import forget, open_folder, remembered


def test_folders_opened_at_the_same_moment_are_all_remembered(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSICSYNC_CONFIG_DIR", str(tmp_path / "config"))
    roots = [tmp_path / f"music{n}" for n in range(8)]
    start = threading.Barrier(len(roots))
    failures: list[BaseException] = []

    def sync_starts(root) -> None:
        root.mkdir()
        start.wait()
        try:
            open_folder(root)[1].close()
        except BaseException as exc:  # reported below
            failures.append(exc)

    for _ in range(5):  # a lost update needs two writers to overlap: give them chances
        threads = [threading.Thread(target=sync_starts, args=(root,)) for root in roots]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        assert set(remembered()) == {str(root) for root in roots}
        for root in roots:  # forgotten concurrently too, then started afresh
            (root / ".musicsync" / "index.db").unlink()
        threads = [threading.Thread(target=forget, args=(root,)) for root in roots]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert remembered() == {}
        for root in roots:
            shutil.rmtree(root)
