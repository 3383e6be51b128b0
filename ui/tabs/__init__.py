"""One module per dashboard tab: `build()` lays out its components, its handlers do the work."""
