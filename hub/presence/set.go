package presence

// Set is one channel's members, with the counts kept as members come and go
// so that Stats costs the same at 10 members or 100,000: no scan per query.
// It is a deterministic core without locking; its owner serializes calls.
type Set struct {
	members map[string]Member // by connection id
	users   map[string]int32  // non-empty user -> its connections in the set
}

// NewSet returns an empty set.
func NewSet() *Set {
	return &Set{members: make(map[string]Member), users: make(map[string]int32)}
}

// Join adds m, or replaces the member of the same connection (a store may
// see a join twice); it reports whether the connection was new.
func (s *Set) Join(m Member) bool {
	old, had := s.members[m.Conn]
	s.members[m.Conn] = m
	if had {
		if old.User == m.User {
			return false
		}
		s.release(old.User)
	}
	if m.User != "" {
		s.users[m.User]++
	}
	return !had
}

// Leave removes conn's member; it reports whether there was one.
func (s *Set) Leave(conn string) bool {
	old, had := s.members[conn]
	if !had {
		return false
	}
	delete(s.members, conn)
	s.release(old.User)
	return true
}

// release drops one connection of user from the user counts.
func (s *Set) release(user string) {
	if user == "" {
		return
	}
	if n := s.users[user]; n > 1 {
		s.users[user] = n - 1
	} else {
		delete(s.users, user)
	}
}

// Len is the number of members.
func (s *Set) Len() int { return len(s.members) }

// Stats counts the members and their distinct users.
func (s *Set) Stats() Stats { return Stats{Conns: len(s.members), Users: len(s.users)} }

// AppendMembers appends every member (in no particular order) to dst.
func (s *Set) AppendMembers(dst []Member) []Member {
	for _, m := range s.members {
		dst = append(dst, m)
	}
	return dst
}
