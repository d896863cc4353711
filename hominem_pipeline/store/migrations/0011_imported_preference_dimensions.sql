-- Imported preference pairs say where they came from and which reward dimensions they are evidence for
-- (issue 11). `source` is the data set's name (the row's own, the importer's --source, or the file name);
-- `dimensions` the manifold dimensions the pair speaks to, empty when neither the importer nor the source
-- map says (training then infers them from the teacher-distilled heads); `dimensions_from` records which
-- of 'importer', 'row' (the row's own field), 'source' or 'none' decided.
ALTER TABLE imported_preferences ADD COLUMN source TEXT DEFAULT 'unknown';
ALTER TABLE imported_preferences ADD COLUMN dimensions TEXT[] DEFAULT [];
ALTER TABLE imported_preferences ADD COLUMN dimensions_from TEXT DEFAULT 'none';
