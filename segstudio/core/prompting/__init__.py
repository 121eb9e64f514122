"""Click-to-segment without torch or Qt: prompts, proposals, the embedding cache, GrabCut, click simulation."""
