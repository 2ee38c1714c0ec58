# Rules for the labels part of the pipeline.
