# Rules for the hr part of the pipeline (filled in by its issue).
