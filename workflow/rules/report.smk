# Rules for the report part of the pipeline.
