package store

import "context"

// The steps of a new user's insert (CreateProfile with no id), exported so
// that a test can run an import between them: the id is taken from the
// sequence, the profile inserted, then checked against the import marks.

func (s *Store) TakeNextProfileID(ctx context.Context) (int64, error) {
	return s.nextUntriedID(ctx, ColProfiles)
}

func (s *Store) InsertProfileAsIs(ctx context.Context, p *Profile) error {
	return s.insert(ctx, ColProfiles, p)
}

func (s *Store) KeepUnlessNamed(ctx context.Context, id int64) (bool, error) {
	return s.keepUnlessNamed(ctx, id)
}
