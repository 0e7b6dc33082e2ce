"""Running totals that statistics read instead of scanning a library, kept by triggers.

- ``library_totals``: per user, songs, bytes and duration by (format, codec, year); the
  format is the filename's extension after its last dot, lowercased ("" for none). A
  user's totals are some dozens of rows where the library is 100,000.
- ``album_plays``: per user, the plays (song_stats.play_count summed) by (album artist,
  album); artists' plays are sums of their albums'.

Triggers on ``library`` and ``song_stats`` keep both in step inside the writing
transaction, whatever writes: uploads, replaces, moves, deletes, plays, a user deleted
(its rows cascade), ``db copy`` (the target's triggers fill them as rows arrive), a bench
filling the tables directly. A row whose count falls to zero is deleted, so no key
outlives its songs.

- SQLite: row triggers adding and taking away each song's figures; before a library row
  goes, its plays leave its album (its song_stats cascade once the row is gone, when the
  album can no longer be looked up).
- PostgreSQL: statement triggers over transition tables, one write per key a statement
  touches (row triggers made loading or deleting 100,000 songs at once quadratic: each
  update of a row in a transaction leaves a version behind). Plays changed add their
  difference to their albums; albums whose songs are retagged or deleted are counted
  again from their few songs, which holds whatever order cascades run in.

Like the search index's FTS5 table these are derived data, not models: ``create`` makes
them for a new database (migrations._create) and revision 0004 for an upgraded one, from
the same statements (a revision keeps its own copy: it never changes later).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Connection, Integer, MetaData, Table, Text

SUMMARIES = MetaData()

LIBRARY_TOTALS = Table(
    "library_totals", SUMMARIES,
    Column("user_id", BigInteger, primary_key=True),
    Column("format", Text, primary_key=True),
    Column("codec", Text, primary_key=True),
    Column("year", Integer, primary_key=True),
    Column("songs", BigInteger, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("duration_ms", BigInteger, nullable=False),
)

ALBUM_PLAYS = Table(
    "album_plays", SUMMARIES,
    Column("user_id", BigInteger, primary_key=True),
    Column("album_artist", Text, primary_key=True),
    Column("album", Text, primary_key=True),
    Column("plays", BigInteger, nullable=False),
)

TABLES = ("library_totals", "album_plays")


def _album_artist(row: str) -> str:
    return f"(CASE WHEN {row}.album_artist = '' THEN {row}.artist ELSE {row}.album_artist END)"


def _format(row: str, dialect: str) -> str:
    """The filename's extension in SQL: SQLite finds the last dot by trimming every other
    character off the right (once a write, never in a scan)."""
    name = f"{row}.filename" if row else "filename"
    if dialect == "sqlite":
        return (f"(CASE WHEN instr({name}, '.') = 0 THEN '' ELSE lower(substr({name}, "
                f"length(rtrim({name}, replace({name}, '.', ''))) + 1)) END)")
    return (f"(CASE WHEN strpos({name}, '.') = 0 THEN '' "
            f"ELSE lower(substring({name} from '[^.]*$')) END)")


def _sqlite_ddl() -> tuple[str, ...]:
    # Row triggers (SQLite has no others); it updates a row in place, so a totals row
    # written once per song of a big statement costs what the song's own row does.
    def totals_key(row: str) -> str:
        return (f"user_id = {row}.user_id AND format = {_format(row, 'sqlite')} "
                f"AND codec = {row}.codec AND year = {row}.year")

    def album_key(row: str) -> str:
        return (f"user_id = {row}.user_id AND album_artist = {_album_artist(row)} "
                f"AND album = {row}.album")

    def add_song(row: str) -> str:
        return (f"INSERT INTO library_totals (user_id, format, codec, year, songs, bytes, "
                f"duration_ms) VALUES ({row}.user_id, {_format(row, 'sqlite')}, {row}.codec, "
                f"{row}.year, 1, {row}.size, {row}.duration_ms) "
                "ON CONFLICT (user_id, format, codec, year) "
                "DO UPDATE SET songs = songs + 1, bytes = bytes + excluded.bytes, "
                "duration_ms = duration_ms + excluded.duration_ms;")

    def remove_song(row: str) -> str:
        key = totals_key(row)
        return (f"UPDATE library_totals SET songs = songs - 1, bytes = bytes - {row}.size, "
                f"duration_ms = duration_ms - {row}.duration_ms WHERE {key}; "
                f"DELETE FROM library_totals WHERE {key} AND songs <= 0;")

    def add_plays(row: str, plays: str, *, may_fall: bool = True) -> str:
        # The song's album as the library row has it now (the row is there: see the doc).
        added = (f"INSERT INTO album_plays (user_id, album_artist, album, plays) "
                 f"SELECT user_id, {_album_artist('library')}, album, {plays} FROM library "
                 f"WHERE id = {row}.library_id ON CONFLICT (user_id, album_artist, album) "
                 "DO UPDATE SET plays = plays + excluded.plays; ")
        if not may_fall:
            return added
        # Key by key (a row value IN a subquery scanned every album of every user).
        song = f"FROM library WHERE id = {row}.library_id"
        return added + (
            f"DELETE FROM album_plays WHERE user_id = (SELECT user_id {song}) "
            f"AND album_artist = (SELECT {_album_artist('library')} {song}) "
            f"AND album = (SELECT album {song}) AND plays <= 0;")

    def plays_of(row: str) -> str:
        return f"(SELECT play_count FROM song_stats WHERE library_id = {row}.id)"

    def move_plays(row: str, sign: str) -> str:
        return (f"INSERT INTO album_plays (user_id, album_artist, album, plays) "
                f"SELECT {row}.user_id, {_album_artist(row)}, {row}.album, "
                f"{sign}play_count FROM song_stats WHERE library_id = {row}.id "
                "AND play_count <> 0 ON CONFLICT (user_id, album_artist, album) "
                "DO UPDATE SET plays = plays + excluded.plays; "
                f"DELETE FROM album_plays WHERE {album_key(row)} AND plays <= 0;")

    changed = " OR ".join(f"old.{column} IS NOT new.{column}" for column in
                          ("user_id", "filename", "codec", "year", "size", "duration_ms"))
    album_changed = " OR ".join(f"old.{column} IS NOT new.{column}" for column in
                                ("user_id", "album", "artist", "album_artist"))
    return (
        "CREATE TABLE library_totals (user_id BIGINT NOT NULL, format TEXT NOT NULL, "
        "codec TEXT NOT NULL, year INTEGER NOT NULL, songs BIGINT NOT NULL, "
        "bytes BIGINT NOT NULL, duration_ms BIGINT NOT NULL, "
        "PRIMARY KEY (user_id, format, codec, year)) WITHOUT ROWID",
        "CREATE TABLE album_plays (user_id BIGINT NOT NULL, album_artist TEXT NOT NULL, "
        "album TEXT NOT NULL, plays BIGINT NOT NULL, "
        "PRIMARY KEY (user_id, album_artist, album)) WITHOUT ROWID",
        f"CREATE TRIGGER library_totals_added AFTER INSERT ON library BEGIN {add_song('new')} END",
        f"CREATE TRIGGER library_totals_removed AFTER DELETE ON library BEGIN "
        f"{remove_song('old')} END",
        f"CREATE TRIGGER library_totals_changed AFTER UPDATE ON library WHEN {changed} BEGIN "
        f"{remove_song('old')} {add_song('new')} END",
        f"CREATE TRIGGER album_plays_song_removed BEFORE DELETE ON library WHEN "
        f"{plays_of('old')} <> 0 BEGIN {move_plays('old', '-')} END",
        f"CREATE TRIGGER album_plays_song_retagged AFTER UPDATE ON library WHEN "
        f"({album_changed}) AND {plays_of('new')} <> 0 BEGIN "
        f"{move_plays('old', '-')} {move_plays('new', '')} END",
        f"CREATE TRIGGER album_plays_counted AFTER INSERT ON song_stats WHEN "
        f"new.play_count > 0 BEGIN {add_plays('new', 'new.play_count', may_fall=False)} END",
        # Play counts only grow (RecordPlays); a fall would be counted too, and an album
        # left at zero dropped.
        f"CREATE TRIGGER album_plays_recounted AFTER UPDATE OF play_count ON song_stats WHEN "
        f"new.play_count > old.play_count BEGIN "
        f"{add_plays('new', 'new.play_count - old.play_count', may_fall=False)} END",
        f"CREATE TRIGGER album_plays_discounted AFTER UPDATE OF play_count ON song_stats WHEN "
        f"new.play_count < old.play_count BEGIN "
        f"{add_plays('new', 'new.play_count - old.play_count')} END",
        # A song's stats deleted alone (its library row stays): no-op when the row is gone.
        f"CREATE TRIGGER album_plays_uncounted AFTER DELETE ON song_stats WHEN "
        f"old.play_count <> 0 BEGIN {add_plays('old', '-old.play_count')} END",
    )


RECOUNT = "album_plays_recount(k.owner, k.artist, k.title)"
DROP_EMPTY_ALBUMS = ("DELETE FROM album_plays WHERE plays <= 0 "
                     "AND user_id IN (SELECT user_id FROM changed_rows); ")


def _postgres_ddl() -> tuple[str, ...]:
    # Statement triggers over transition tables: one write per key a statement touches.
    # Row triggers would update one totals row once per song, and PostgreSQL keeps every
    # version of a row updated in a transaction: loading 100,000 songs at once (db copy)
    # or deleting a user's grew quadratic.
    def songs(rows: str, sign: str) -> str:
        return (f"SELECT user_id, {_format(rows, 'postgresql')} AS format, codec, year, "
                f"{sign}1 AS songs, {sign}size AS bytes, {sign}duration_ms AS duration_ms "
                f"FROM {rows}")

    def add_totals(changes: str) -> str:
        return ("INSERT INTO library_totals AS t (user_id, format, codec, year, songs, bytes, "
                "duration_ms) SELECT user_id, format, codec, year, sum(songs), sum(bytes), "
                f"sum(duration_ms) FROM ({changes}) AS changes GROUP BY 1, 2, 3, 4 "
                "HAVING sum(songs) <> 0 OR sum(bytes) <> 0 OR sum(duration_ms) <> 0 "
                "ON CONFLICT (user_id, format, codec, year) DO UPDATE SET "
                "songs = t.songs + EXCLUDED.songs, bytes = t.bytes + EXCLUDED.bytes, "
                "duration_ms = t.duration_ms + EXCLUDED.duration_ms; ")

    def placed(rows: str) -> str:
        return f"SELECT id, user_id, {_album_artist(rows)} AS artist, album FROM {rows}"

    def keys(rows: str) -> str:
        return f"SELECT DISTINCT user_id, {_album_artist(rows)}, album FROM {rows}"

    def add_plays(changes: str) -> str:
        # Each song's row looked up by id (LIMIT keeps the planner from making it a join,
        # which read the whole library to hash it: transition tables look small to it).
        return ("INSERT INTO album_plays AS a (user_id, album_artist, album, plays) "
                "SELECT l.user_id, l.album_artist, l.album, sum(c.plays) "
                f"FROM ({changes}) AS c CROSS JOIN LATERAL (SELECT user_id, "
                f"{_album_artist('library')} AS album_artist, album FROM library "
                "WHERE id = c.library_id LIMIT 1) AS l "
                "GROUP BY 1, 2, 3 HAVING sum(c.plays) <> 0 "
                "ON CONFLICT (user_id, album_artist, album) "
                "DO UPDATE SET plays = a.plays + EXCLUDED.plays; ")

    drop_empty = ("DELETE FROM library_totals WHERE songs <= 0 "
                  "AND user_id IN (SELECT user_id FROM old_rows); ")
    return (
        "CREATE TABLE library_totals (user_id BIGINT NOT NULL, format TEXT NOT NULL, "
        "codec TEXT NOT NULL, year INTEGER NOT NULL, songs BIGINT NOT NULL, "
        "bytes BIGINT NOT NULL, duration_ms BIGINT NOT NULL, "
        "PRIMARY KEY (user_id, format, codec, year))",
        "CREATE TABLE album_plays (user_id BIGINT NOT NULL, album_artist TEXT NOT NULL, "
        "album TEXT NOT NULL, plays BIGINT NOT NULL, "
        "PRIMARY KEY (user_id, album_artist, album))",
        "CREATE FUNCTION library_totals_follow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF TG_OP = 'INSERT' THEN " + add_totals(songs("new_rows", "")) +
        "ELSIF TG_OP = 'DELETE' THEN " + add_totals(songs("old_rows", "-")) + drop_empty +
        "ELSE " + add_totals(f"{songs('new_rows', '')} UNION ALL {songs('old_rows', '-')}") +
        drop_empty + "END IF; RETURN NULL; END $$",
        # An album's plays counted again from its songs (a few) wherever they may have
        # changed: simpler than deltas, and right whatever order cascades run in.
        "CREATE FUNCTION album_plays_recount(of_user BIGINT, of_artist TEXT, of_album TEXT) "
        "RETURNS void LANGUAGE plpgsql AS $$ DECLARE total BIGINT; BEGIN "
        "SELECT COALESCE(sum(s.play_count), 0) INTO total FROM library l "
        "JOIN song_stats s ON s.library_id = l.id WHERE l.user_id = of_user "
        f"AND l.album = of_album AND {_album_artist('l')} = of_artist; "
        "IF total = 0 THEN DELETE FROM album_plays WHERE user_id = of_user "
        "AND album_artist = of_artist AND album = of_album; "
        "ELSE INSERT INTO album_plays AS a (user_id, album_artist, album, plays) "
        "VALUES (of_user, of_artist, of_album, total) ON CONFLICT (user_id, album_artist, album) "
        "DO UPDATE SET plays = EXCLUDED.plays; END IF; END $$",
        "CREATE FUNCTION album_plays_follow_songs() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN IF TG_OP = 'DELETE' THEN "
        f"PERFORM {RECOUNT} FROM ({keys('old_rows')}) AS k (owner, artist, title); "
        # Retagged songs' albums before and after: rows of one table not in the other
        # (EXCEPT hashes both; a join of transition tables may loop over one per row).
        f"ELSE PERFORM {RECOUNT} FROM ("
        f"SELECT user_id, artist, album FROM ({placed('old_rows')} EXCEPT "
        f"{placed('new_rows')}) AS before UNION "
        f"SELECT user_id, artist, album FROM ({placed('new_rows')} EXCEPT "
        f"{placed('old_rows')}) AS after) AS k (owner, artist, title); "
        "END IF; RETURN NULL; END $$",
        # Plays changed: each album gets the difference, in one statement (songs whose
        # library row is gone went with it: album_plays_follow_songs counted those).
        "CREATE FUNCTION album_plays_follow_stats() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN IF TG_OP = 'INSERT' THEN "
        + add_plays("SELECT library_id, play_count AS plays FROM changed_rows") +
        "ELSIF TG_OP = 'UPDATE' THEN "
        # Not old joined to new: transition tables have no statistics, and the planner
        # loops over one for each row of the other. (Counts only grow here: a fall would
        # leave an album at zero, which statistics pass over.)
        + add_plays("SELECT library_id, play_count AS plays FROM changed_rows UNION ALL "
                    "SELECT library_id, -play_count FROM old_rows") +
        "ELSE " + add_plays("SELECT library_id, -play_count AS plays FROM changed_rows") +
        DROP_EMPTY_ALBUMS + "END IF; RETURN NULL; END $$",
        "CREATE TRIGGER library_totals_added AFTER INSERT ON library "
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION library_totals_follow()",
        "CREATE TRIGGER library_totals_removed AFTER DELETE ON library "
        "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION library_totals_follow()",
        "CREATE TRIGGER library_totals_changed AFTER UPDATE ON library "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION library_totals_follow()",
        "CREATE TRIGGER album_plays_songs_removed AFTER DELETE ON library "
        "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION album_plays_follow_songs()",
        "CREATE TRIGGER album_plays_songs_retagged AFTER UPDATE ON library "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION album_plays_follow_songs()",
        "CREATE TRIGGER album_plays_counted AFTER INSERT ON song_stats "
        "REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION album_plays_follow_stats()",
        "CREATE TRIGGER album_plays_recounted AFTER UPDATE ON song_stats "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS changed_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION album_plays_follow_stats()",
        # Stats deleted with their song are the library trigger's; alone, this one's.
        "CREATE TRIGGER album_plays_uncounted AFTER DELETE ON song_stats "
        "REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION album_plays_follow_stats()",
    )


SQLITE_DDL = _sqlite_ddl()
POSTGRES_DDL = _postgres_ddl()

def afresh(dialect: str, format_sql: str | None = None) -> dict[str, str]:
    """Each table's rows computed from the library and its plays as they are (a SELECT
    per table, in its column order): what revision 0004 filled them with, and a check."""
    format_sql = format_sql or _format("", dialect)
    return {
        "library_totals":
            f"SELECT user_id, {format_sql}, codec, year, count(*), sum(size), "
            f"sum(duration_ms) FROM library GROUP BY user_id, {format_sql}, codec, year",
        "album_plays":
            f"SELECT l.user_id, {_album_artist('l')}, l.album, sum(s.play_count) "
            "FROM song_stats s JOIN library l ON l.id = s.library_id "
            f"GROUP BY l.user_id, {_album_artist('l')}, l.album HAVING sum(s.play_count) <> 0",
    }


def fill_statements(dialect: str, format_sql: str | None = None) -> tuple[str, ...]:
    """INSERTs filling the (empty) tables from the rows there are."""
    tables = {table.name: table for table in SUMMARIES.sorted_tables}
    return tuple(f"INSERT INTO {name} ({', '.join(c.name for c in tables[name].columns)}) "
                 f"{select}" for name, select in afresh(dialect, format_sql).items())


def disagreeing(connection: Connection) -> list[str]:
    """The tables whose rows differ from the figures computed afresh (``musicsync fsck``:
    triggers keep them right; a hand edit of the database may not)."""
    found = []
    for table, computed in afresh(connection.dialect.name).items():
        count = "songs" if table == "library_totals" else "plays"
        kept = connection.exec_driver_sql(f"SELECT * FROM {table} WHERE {count} <> 0")
        if sorted(map(tuple, kept)) != sorted(map(tuple, connection.exec_driver_sql(computed))):
            found.append(table)
    return found


def rebuild(connection: Connection) -> None:
    """Both tables computed afresh (``musicsync fsck --repair``), in the caller's write."""
    for table in TABLES:
        connection.exec_driver_sql(f"DELETE FROM {table}")
    for statement in fill_statements(connection.dialect.name):
        connection.exec_driver_sql(statement)


def create(connection: Connection) -> None:
    """The tables and their triggers (see above), in a database without them."""
    ddl = SQLITE_DDL if connection.dialect.name == "sqlite" else POSTGRES_DDL
    for statement in ddl:
        connection.exec_driver_sql(statement)
