"""What players keep beyond files: playlists, favourites, ratings and plays, cover art,
browsing, search and statistics (issue 15). Each module owns one of them; services/
decodes their RPCs (library.proto)."""
