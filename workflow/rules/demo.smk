# Rules for the demo part of the pipeline.
