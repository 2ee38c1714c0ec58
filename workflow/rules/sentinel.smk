# Rules for the sentinel part of the pipeline (filled in by its issue).
