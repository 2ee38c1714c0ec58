# Rules for the expand part of the pipeline (filled in by its issue).
