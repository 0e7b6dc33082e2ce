"""Statistics from running totals: songs, bytes and duration by format, codec and year, and
plays by album, per user, kept by triggers (db/summaries.py), filled from the rows there are.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# As db/summaries.py made them at this revision (a revision does not change later).
SQLITE = (
    "CREATE TABLE library_totals (user_id BIGINT NOT NULL, format TEXT NOT NULL, codec TEXT"
    " NOT NULL, year INTEGER NOT NULL, songs BIGINT NOT NULL, bytes BIGINT NOT NULL, "
    "duration_ms BIGINT NOT NULL, PRIMARY KEY (user_id, format, codec, year)) WITHOUT ROWID",
    "CREATE TABLE album_plays (user_id BIGINT NOT NULL, album_artist TEXT NOT NULL, album "
    "TEXT NOT NULL, plays BIGINT NOT NULL, PRIMARY KEY (user_id, album_artist, album)) "
    "WITHOUT ROWID",
    "CREATE TRIGGER library_totals_added AFTER INSERT ON library BEGIN INSERT INTO "
    "library_totals (user_id, format, codec, year, songs, bytes, duration_ms) VALUES "
    "(new.user_id, (CASE WHEN instr(new.filename, '.') = 0 THEN '' ELSE "
    "lower(substr(new.filename, length(rtrim(new.filename, replace(new.filename, '.', '')))"
    " + 1)) END), new.codec, new.year, 1, new.size, new.duration_ms) ON CONFLICT (user_id, "
    "format, codec, year) DO UPDATE SET songs = songs + 1, bytes = bytes + excluded.bytes, "
    "duration_ms = duration_ms + excluded.duration_ms; END",
    "CREATE TRIGGER library_totals_removed AFTER DELETE ON library BEGIN UPDATE "
    "library_totals SET songs = songs - 1, bytes = bytes - old.size, duration_ms = "
    "duration_ms - old.duration_ms WHERE user_id = old.user_id AND format = (CASE WHEN "
    "instr(old.filename, '.') = 0 THEN '' ELSE lower(substr(old.filename, "
    "length(rtrim(old.filename, replace(old.filename, '.', ''))) + 1)) END) AND codec = "
    "old.codec AND year = old.year; DELETE FROM library_totals WHERE user_id = old.user_id "
    "AND format = (CASE WHEN instr(old.filename, '.') = 0 THEN '' ELSE "
    "lower(substr(old.filename, length(rtrim(old.filename, replace(old.filename, '.', '')))"
    " + 1)) END) AND codec = old.codec AND year = old.year AND songs <= 0; END",
    "CREATE TRIGGER library_totals_changed AFTER UPDATE ON library WHEN old.user_id IS NOT "
    "new.user_id OR old.filename IS NOT new.filename OR old.codec IS NOT new.codec OR "
    "old.year IS NOT new.year OR old.size IS NOT new.size OR old.duration_ms IS NOT "
    "new.duration_ms BEGIN UPDATE library_totals SET songs = songs - 1, bytes = bytes - "
    "old.size, duration_ms = duration_ms - old.duration_ms WHERE user_id = old.user_id AND "
    "format = (CASE WHEN instr(old.filename, '.') = 0 THEN '' ELSE "
    "lower(substr(old.filename, length(rtrim(old.filename, replace(old.filename, '.', '')))"
    " + 1)) END) AND codec = old.codec AND year = old.year; DELETE FROM library_totals "
    "WHERE user_id = old.user_id AND format = (CASE WHEN instr(old.filename, '.') = 0 THEN "
    "'' ELSE lower(substr(old.filename, length(rtrim(old.filename, replace(old.filename, "
    "'.', ''))) + 1)) END) AND codec = old.codec AND year = old.year AND songs <= 0; INSERT"
    " INTO library_totals (user_id, format, codec, year, songs, bytes, duration_ms) VALUES "
    "(new.user_id, (CASE WHEN instr(new.filename, '.') = 0 THEN '' ELSE "
    "lower(substr(new.filename, length(rtrim(new.filename, replace(new.filename, '.', '')))"
    " + 1)) END), new.codec, new.year, 1, new.size, new.duration_ms) ON CONFLICT (user_id, "
    "format, codec, year) DO UPDATE SET songs = songs + 1, bytes = bytes + excluded.bytes, "
    "duration_ms = duration_ms + excluded.duration_ms; END",
    "CREATE TRIGGER album_plays_song_removed BEFORE DELETE ON library WHEN (SELECT "
    "play_count FROM song_stats WHERE library_id = old.id) <> 0 BEGIN INSERT INTO "
    "album_plays (user_id, album_artist, album, plays) SELECT old.user_id, (CASE WHEN "
    "old.album_artist = '' THEN old.artist ELSE old.album_artist END), old.album, "
    "-play_count FROM song_stats WHERE library_id = old.id AND play_count <> 0 ON CONFLICT "
    "(user_id, album_artist, album) DO UPDATE SET plays = plays + excluded.plays; DELETE "
    "FROM album_plays WHERE user_id = old.user_id AND album_artist = (CASE WHEN "
    "old.album_artist = '' THEN old.artist ELSE old.album_artist END) AND album = old.album"
    " AND plays <= 0; END",
    "CREATE TRIGGER album_plays_song_retagged AFTER UPDATE ON library WHEN (old.user_id IS "
    "NOT new.user_id OR old.album IS NOT new.album OR old.artist IS NOT new.artist OR "
    "old.album_artist IS NOT new.album_artist) AND (SELECT play_count FROM song_stats WHERE"
    " library_id = new.id) <> 0 BEGIN INSERT INTO album_plays (user_id, album_artist, "
    "album, plays) SELECT old.user_id, (CASE WHEN old.album_artist = '' THEN old.artist "
    "ELSE old.album_artist END), old.album, -play_count FROM song_stats WHERE library_id = "
    "old.id AND play_count <> 0 ON CONFLICT (user_id, album_artist, album) DO UPDATE SET "
    "plays = plays + excluded.plays; DELETE FROM album_plays WHERE user_id = old.user_id "
    "AND album_artist = (CASE WHEN old.album_artist = '' THEN old.artist ELSE "
    "old.album_artist END) AND album = old.album AND plays <= 0; INSERT INTO album_plays "
    "(user_id, album_artist, album, plays) SELECT new.user_id, (CASE WHEN new.album_artist "
    "= '' THEN new.artist ELSE new.album_artist END), new.album, play_count FROM song_stats"
    " WHERE library_id = new.id AND play_count <> 0 ON CONFLICT (user_id, album_artist, "
    "album) DO UPDATE SET plays = plays + excluded.plays; DELETE FROM album_plays WHERE "
    "user_id = new.user_id AND album_artist = (CASE WHEN new.album_artist = '' THEN "
    "new.artist ELSE new.album_artist END) AND album = new.album AND plays <= 0; END",
    "CREATE TRIGGER album_plays_counted AFTER INSERT ON song_stats WHEN new.play_count > 0 "
    "BEGIN INSERT INTO album_plays (user_id, album_artist, album, plays) SELECT user_id, "
    "(CASE WHEN library.album_artist = '' THEN library.artist ELSE library.album_artist "
    "END), album, new.play_count FROM library WHERE id = new.library_id ON CONFLICT "
    "(user_id, album_artist, album) DO UPDATE SET plays = plays + excluded.plays;  END",
    "CREATE TRIGGER album_plays_recounted AFTER UPDATE OF play_count ON song_stats WHEN "
    "new.play_count > old.play_count BEGIN INSERT INTO album_plays (user_id, album_artist, "
    "album, plays) SELECT user_id, (CASE WHEN library.album_artist = '' THEN library.artist"
    " ELSE library.album_artist END), album, new.play_count - old.play_count FROM library "
    "WHERE id = new.library_id ON CONFLICT (user_id, album_artist, album) DO UPDATE SET "
    "plays = plays + excluded.plays;  END",
    "CREATE TRIGGER album_plays_discounted AFTER UPDATE OF play_count ON song_stats WHEN "
    "new.play_count < old.play_count BEGIN INSERT INTO album_plays (user_id, album_artist, "
    "album, plays) SELECT user_id, (CASE WHEN library.album_artist = '' THEN library.artist"
    " ELSE library.album_artist END), album, new.play_count - old.play_count FROM library "
    "WHERE id = new.library_id ON CONFLICT (user_id, album_artist, album) DO UPDATE SET "
    "plays = plays + excluded.plays; DELETE FROM album_plays WHERE user_id = (SELECT "
    "user_id FROM library WHERE id = new.library_id) AND album_artist = (SELECT (CASE WHEN "
    "library.album_artist = '' THEN library.artist ELSE library.album_artist END) FROM "
    "library WHERE id = new.library_id) AND album = (SELECT album FROM library WHERE id = "
    "new.library_id) AND plays <= 0; END",
    "CREATE TRIGGER album_plays_uncounted AFTER DELETE ON song_stats WHEN old.play_count <>"
    " 0 BEGIN INSERT INTO album_plays (user_id, album_artist, album, plays) SELECT user_id,"
    " (CASE WHEN library.album_artist = '' THEN library.artist ELSE library.album_artist "
    "END), album, -old.play_count FROM library WHERE id = old.library_id ON CONFLICT "
    "(user_id, album_artist, album) DO UPDATE SET plays = plays + excluded.plays; DELETE "
    "FROM album_plays WHERE user_id = (SELECT user_id FROM library WHERE id = "
    "old.library_id) AND album_artist = (SELECT (CASE WHEN library.album_artist = '' THEN "
    "library.artist ELSE library.album_artist END) FROM library WHERE id = old.library_id) "
    "AND album = (SELECT album FROM library WHERE id = old.library_id) AND plays <= 0; END",
)
POSTGRES = (
    "CREATE TABLE library_totals (user_id BIGINT NOT NULL, format TEXT NOT NULL, codec TEXT"
    " NOT NULL, year INTEGER NOT NULL, songs BIGINT NOT NULL, bytes BIGINT NOT NULL, "
    "duration_ms BIGINT NOT NULL, PRIMARY KEY (user_id, format, codec, year))",
    "CREATE TABLE album_plays (user_id BIGINT NOT NULL, album_artist TEXT NOT NULL, album "
    "TEXT NOT NULL, plays BIGINT NOT NULL, PRIMARY KEY (user_id, album_artist, album))",
    "CREATE FUNCTION library_totals_follow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "IF TG_OP = 'INSERT' THEN INSERT INTO library_totals AS t (user_id, format, codec, "
    "year, songs, bytes, duration_ms) SELECT user_id, format, codec, year, sum(songs), "
    "sum(bytes), sum(duration_ms) FROM (SELECT user_id, (CASE WHEN "
    "strpos(new_rows.filename, '.') = 0 THEN '' ELSE lower(substring(new_rows.filename from"
    " '[^.]*$')) END) AS format, codec, year, 1 AS songs, size AS bytes, duration_ms AS "
    "duration_ms FROM new_rows) AS changes GROUP BY 1, 2, 3, 4 HAVING sum(songs) <> 0 OR "
    "sum(bytes) <> 0 OR sum(duration_ms) <> 0 ON CONFLICT (user_id, format, codec, year) DO"
    " UPDATE SET songs = t.songs + EXCLUDED.songs, bytes = t.bytes + EXCLUDED.bytes, "
    "duration_ms = t.duration_ms + EXCLUDED.duration_ms; ELSIF TG_OP = 'DELETE' THEN INSERT"
    " INTO library_totals AS t (user_id, format, codec, year, songs, bytes, duration_ms) "
    "SELECT user_id, format, codec, year, sum(songs), sum(bytes), sum(duration_ms) FROM "
    "(SELECT user_id, (CASE WHEN strpos(old_rows.filename, '.') = 0 THEN '' ELSE "
    "lower(substring(old_rows.filename from '[^.]*$')) END) AS format, codec, year, -1 AS "
    "songs, -size AS bytes, -duration_ms AS duration_ms FROM old_rows) AS changes GROUP BY "
    "1, 2, 3, 4 HAVING sum(songs) <> 0 OR sum(bytes) <> 0 OR sum(duration_ms) <> 0 ON "
    "CONFLICT (user_id, format, codec, year) DO UPDATE SET songs = t.songs + "
    "EXCLUDED.songs, bytes = t.bytes + EXCLUDED.bytes, duration_ms = t.duration_ms + "
    "EXCLUDED.duration_ms; DELETE FROM library_totals WHERE songs <= 0 AND user_id IN "
    "(SELECT user_id FROM old_rows); ELSE INSERT INTO library_totals AS t (user_id, format,"
    " codec, year, songs, bytes, duration_ms) SELECT user_id, format, codec, year, "
    "sum(songs), sum(bytes), sum(duration_ms) FROM (SELECT user_id, (CASE WHEN "
    "strpos(new_rows.filename, '.') = 0 THEN '' ELSE lower(substring(new_rows.filename from"
    " '[^.]*$')) END) AS format, codec, year, 1 AS songs, size AS bytes, duration_ms AS "
    "duration_ms FROM new_rows UNION ALL SELECT user_id, (CASE WHEN "
    "strpos(old_rows.filename, '.') = 0 THEN '' ELSE lower(substring(old_rows.filename from"
    " '[^.]*$')) END) AS format, codec, year, -1 AS songs, -size AS bytes, -duration_ms AS "
    "duration_ms FROM old_rows) AS changes GROUP BY 1, 2, 3, 4 HAVING sum(songs) <> 0 OR "
    "sum(bytes) <> 0 OR sum(duration_ms) <> 0 ON CONFLICT (user_id, format, codec, year) DO"
    " UPDATE SET songs = t.songs + EXCLUDED.songs, bytes = t.bytes + EXCLUDED.bytes, "
    "duration_ms = t.duration_ms + EXCLUDED.duration_ms; DELETE FROM library_totals WHERE "
    "songs <= 0 AND user_id IN (SELECT user_id FROM old_rows); END IF; RETURN NULL; END $$",
    "CREATE FUNCTION album_plays_recount(of_user BIGINT, of_artist TEXT, of_album TEXT) "
    "RETURNS void LANGUAGE plpgsql AS $$ DECLARE total BIGINT; BEGIN SELECT "
    "COALESCE(sum(s.play_count), 0) INTO total FROM library l JOIN song_stats s ON "
    "s.library_id = l.id WHERE l.user_id = of_user AND l.album = of_album AND (CASE WHEN "
    "l.album_artist = '' THEN l.artist ELSE l.album_artist END) = of_artist; IF total = 0 "
    "THEN DELETE FROM album_plays WHERE user_id = of_user AND album_artist = of_artist AND "
    "album = of_album; ELSE INSERT INTO album_plays AS a (user_id, album_artist, album, "
    "plays) VALUES (of_user, of_artist, of_album, total) ON CONFLICT (user_id, "
    "album_artist, album) DO UPDATE SET plays = EXCLUDED.plays; END IF; END $$",
    "CREATE FUNCTION album_plays_follow_songs() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN IF TG_OP = 'DELETE' THEN PERFORM album_plays_recount(k.owner, k.artist, k.title)"
    " FROM (SELECT DISTINCT user_id, (CASE WHEN old_rows.album_artist = '' THEN "
    "old_rows.artist ELSE old_rows.album_artist END), album FROM old_rows) AS k (owner, "
    "artist, title); ELSE PERFORM album_plays_recount(k.owner, k.artist, k.title) FROM "
    "(SELECT user_id, artist, album FROM (SELECT id, user_id, (CASE WHEN "
    "old_rows.album_artist = '' THEN old_rows.artist ELSE old_rows.album_artist END) AS "
    "artist, album FROM old_rows EXCEPT SELECT id, user_id, (CASE WHEN "
    "new_rows.album_artist = '' THEN new_rows.artist ELSE new_rows.album_artist END) AS "
    "artist, album FROM new_rows) AS before UNION SELECT user_id, artist, album FROM "
    "(SELECT id, user_id, (CASE WHEN new_rows.album_artist = '' THEN new_rows.artist ELSE "
    "new_rows.album_artist END) AS artist, album FROM new_rows EXCEPT SELECT id, user_id, "
    "(CASE WHEN old_rows.album_artist = '' THEN old_rows.artist ELSE old_rows.album_artist "
    "END) AS artist, album FROM old_rows) AS after) AS k (owner, artist, title); END IF; "
    "RETURN NULL; END $$",
    "CREATE FUNCTION album_plays_follow_stats() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN IF TG_OP = 'INSERT' THEN INSERT INTO album_plays AS a (user_id, album_artist, "
    "album, plays) SELECT l.user_id, l.album_artist, l.album, sum(c.plays) FROM (SELECT "
    "library_id, play_count AS plays FROM changed_rows) AS c CROSS JOIN LATERAL (SELECT "
    "user_id, (CASE WHEN library.album_artist = '' THEN library.artist ELSE "
    "library.album_artist END) AS album_artist, album FROM library WHERE id = c.library_id "
    "LIMIT 1) AS l GROUP BY 1, 2, 3 HAVING sum(c.plays) <> 0 ON CONFLICT (user_id, "
    "album_artist, album) DO UPDATE SET plays = a.plays + EXCLUDED.plays; ELSIF TG_OP = "
    "'UPDATE' THEN INSERT INTO album_plays AS a (user_id, album_artist, album, plays) "
    "SELECT l.user_id, l.album_artist, l.album, sum(c.plays) FROM (SELECT library_id, "
    "play_count AS plays FROM changed_rows UNION ALL SELECT library_id, -play_count FROM "
    "old_rows) AS c CROSS JOIN LATERAL (SELECT user_id, (CASE WHEN library.album_artist = "
    "'' THEN library.artist ELSE library.album_artist END) AS album_artist, album FROM "
    "library WHERE id = c.library_id LIMIT 1) AS l GROUP BY 1, 2, 3 HAVING sum(c.plays) <> "
    "0 ON CONFLICT (user_id, album_artist, album) DO UPDATE SET plays = a.plays + "
    "EXCLUDED.plays; ELSE INSERT INTO album_plays AS a (user_id, album_artist, album, "
    "plays) SELECT l.user_id, l.album_artist, l.album, sum(c.plays) FROM (SELECT "
    "library_id, -play_count AS plays FROM changed_rows) AS c CROSS JOIN LATERAL (SELECT "
    "user_id, (CASE WHEN library.album_artist = '' THEN library.artist ELSE "
    "library.album_artist END) AS album_artist, album FROM library WHERE id = c.library_id "
    "LIMIT 1) AS l GROUP BY 1, 2, 3 HAVING sum(c.plays) <> 0 ON CONFLICT (user_id, "
    "album_artist, album) DO UPDATE SET plays = a.plays + EXCLUDED.plays; DELETE FROM "
    "album_plays WHERE plays <= 0 AND user_id IN (SELECT user_id FROM changed_rows); END "
    "IF; RETURN NULL; END $$",
    "CREATE TRIGGER library_totals_added AFTER INSERT ON library REFERENCING NEW TABLE AS "
    "new_rows FOR EACH STATEMENT EXECUTE FUNCTION library_totals_follow()",
    "CREATE TRIGGER library_totals_removed AFTER DELETE ON library REFERENCING OLD TABLE AS"
    " old_rows FOR EACH STATEMENT EXECUTE FUNCTION library_totals_follow()",
    "CREATE TRIGGER library_totals_changed AFTER UPDATE ON library REFERENCING OLD TABLE AS"
    " old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION "
    "library_totals_follow()",
    "CREATE TRIGGER album_plays_songs_removed AFTER DELETE ON library REFERENCING OLD TABLE"
    " AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION album_plays_follow_songs()",
    "CREATE TRIGGER album_plays_songs_retagged AFTER UPDATE ON library REFERENCING OLD "
    "TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION "
    "album_plays_follow_songs()",
    "CREATE TRIGGER album_plays_counted AFTER INSERT ON song_stats REFERENCING NEW TABLE AS"
    " changed_rows FOR EACH STATEMENT EXECUTE FUNCTION album_plays_follow_stats()",
    "CREATE TRIGGER album_plays_recounted AFTER UPDATE ON song_stats REFERENCING OLD TABLE "
    "AS old_rows NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION "
    "album_plays_follow_stats()",
    "CREATE TRIGGER album_plays_uncounted AFTER DELETE ON song_stats REFERENCING OLD TABLE "
    "AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION album_plays_follow_stats()",
)
FILL = (
    "INSERT INTO library_totals (user_id, format, codec, year, songs, bytes, duration_ms) "
    "SELECT user_id, {format}, codec, year, count(*), sum(size), sum(duration_ms) FROM "
    "library GROUP BY user_id, {format}, codec, year",
    "INSERT INTO album_plays (user_id, album_artist, album, plays) SELECT l.user_id, (CASE "
    "WHEN l.album_artist = '' THEN l.artist ELSE l.album_artist END), l.album, "
    "sum(s.play_count) FROM song_stats s JOIN library l ON l.id = s.library_id GROUP BY "
    "l.user_id, (CASE WHEN l.album_artist = '' THEN l.artist ELSE l.album_artist END), "
    "l.album HAVING sum(s.play_count) <> 0",
)
FORMAT = {
    "sqlite": (
        "(CASE WHEN instr(filename, '.') = 0 THEN '' ELSE lower(substr(filename, "
        "length(rtrim(filename, replace(filename, '.', ''))) + 1)) END)"),
    "postgresql": (
        "(CASE WHEN strpos(filename, '.') = 0 THEN '' ELSE lower(substring(filename from "
        "'[^.]*$')) END)"),
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in SQLITE if dialect == "sqlite" else POSTGRES:
        op.execute(statement)
    for statement in FILL:
        op.execute(statement.replace("{format}", FORMAT[dialect]))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for function in ("library_totals_follow", "album_plays_follow_songs",
                         "album_plays_follow_stats", "album_plays_recount"):
            op.execute(f"DROP FUNCTION {function} CASCADE")
    else:
        for trigger in ("library_totals_added", "library_totals_removed",
                        "library_totals_changed", "album_plays_song_removed",
                        "album_plays_song_retagged", "album_plays_counted",
                        "album_plays_recounted", "album_plays_discounted",
                        "album_plays_uncounted"):
            op.execute(f"DROP TRIGGER {trigger}")
    op.execute("DROP TABLE album_plays")
    op.execute("DROP TABLE library_totals")
