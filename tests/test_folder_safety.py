"""What keeps a folder sync safe: the remembered-folder guard and the trash."""

from __future__ import annotations

import datetime
import json
import os
import stat
import shutil

import pytest

from musicsync.client.folder.guard import FolderRefused, folders_file, forget, open_folder
from musicsync.client.folder.trash import Trash

from .folder_helpers import song, write


@pytest.fixture(autouse=True)
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSICSYNC_CONFIG_DIR", str(tmp_path / "config"))
    return tmp_path / "config"


def test_a_new_folder_is_marked_and_remembered_privately(tmp_path):
    root = tmp_path / "music"
    root.mkdir()
    folder, index = open_folder(root)
    index.close()
    assert (root / ".musicsync" / "index.db").is_file()
    saved = json.loads(folders_file().read_text())
    assert saved == {"folders": {str(root): {"device_id": folder.device_id}}}
    assert stat.S_IMODE(os.stat(folders_file()).st_mode) == 0o600
    again, index = open_folder(root)
    index.close()
    assert again.device_id == folder.device_id


def test_a_synced_folder_that_lost_its_marker_is_refused_and_left_untouched(tmp_path):
    root = tmp_path / "music"
    root.mkdir()
    open_folder(root)[1].close()
    shutil.rmtree(root / ".musicsync")  # as an unmounted disk's empty mount point looks
    with pytest.raises(FolderRefused, match=r"synced before but its \.musicsync folder is "
                                            r"gone: is the disk mounted.*--forget"):
        open_folder(root)
    assert list(root.iterdir()) == []
    assert forget(root)
    folder, index = open_folder(root)  # after --forget: a new start
    index.close()
    assert (root / ".musicsync").is_dir()


def test_a_folder_that_does_not_exist_or_is_a_file_is_refused(tmp_path):
    with pytest.raises(FolderRefused, match="does not exist"):
        open_folder(tmp_path / "nowhere")
    write(tmp_path, "file.wav", song("f"))
    with pytest.raises(FolderRefused, match="not a folder"):
        open_folder(tmp_path / "file.wav")
    assert not (tmp_path / "nowhere").exists()


def test_a_marked_folder_not_remembered_here_is_adopted_with_its_device_id(tmp_path, config):
    root = tmp_path / "music"
    root.mkdir()
    folder, index = open_folder(root)
    index.close()
    folders_file().unlink()  # a new computer, or a new configuration
    adopted, index = open_folder(root)
    index.close()
    assert adopted.device_id == folder.device_id


class Clock:
    def __init__(self, day: datetime.date):
        self.day = day

    def __call__(self) -> float:
        return datetime.datetime.combine(self.day, datetime.time(12),
                                         datetime.timezone.utc).timestamp()


def test_trash_keeps_the_relative_path_under_the_day_and_never_overwrites(tmp_path):
    root = tmp_path / "music"
    clock = Clock(datetime.date(2026, 3, 1))
    trash = Trash(root, clock=clock)
    write(root, "A/b.wav", song("1"))
    first = trash.put("A/b.wav")
    write(root, "A/b.wav", song("2"))
    second = trash.put("A/b.wav")
    assert first == root / ".musicsync/trash/2026-03-01/A/b.wav"
    assert second == root / ".musicsync/trash/2026-03-01/A/b (2).wav"
    assert (first.read_bytes(), second.read_bytes()) == (song("1"), song("2"))
    assert not (root / "A/b.wav").exists()


def test_trash_purges_days_older_than_thirty_days_only(tmp_path):
    root = tmp_path / "music"
    clock = Clock(datetime.date(2026, 1, 1))
    trash = Trash(root, clock=clock)
    write(root, "old.wav", song("o"))
    trash.put("old.wav")
    clock.day = datetime.date(2026, 1, 20)
    write(root, "newer.wav", song("n"))
    trash.put("newer.wav")
    clock.day = datetime.date(2026, 1, 31)  # 30 days on: the first day is kept
    assert trash.purge() == 0
    clock.day = datetime.date(2026, 2, 1)
    assert trash.purge() == 1
    assert sorted(p.name for p in (root / ".musicsync/trash").iterdir()) == ["2026-01-20"]
