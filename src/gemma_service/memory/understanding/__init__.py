"""Query understanding for memory search: what a question says about time, people, emotion
and intent, turned into soft preferences for the retriever. Pure functions, no I/O."""
