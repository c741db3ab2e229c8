"""Operations on a finished profile: audiences and lookups for people, erasure on request."""
