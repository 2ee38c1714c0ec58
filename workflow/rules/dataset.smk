# Rules for the dataset part of the pipeline (filled in by its issue).
