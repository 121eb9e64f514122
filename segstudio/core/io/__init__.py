"""Reading and writing what a user opens: images, masks, class tables, datasets, saved corrections."""
