# Rules for the train part of the pipeline (filled in by its issue).
