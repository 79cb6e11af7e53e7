package httpapi

import (
	"context"
	"slices"

	"github.com/ternmq/tern/broker"
)

// The hook of the web console (Config.Console): the console's handler
// runs behind the API's authentication and learns from the request's
// context who the user is and whether they are an administrator.

type userKey struct{}

// RequestUser is the authenticated user of a request that the handler
// passes on to Config.Console.
type RequestUser struct {
	// Info is the user as the broker's hooks see them: ClientID
	// "http:" + user name.
	Info *broker.ClientInfo
	// Admin: the user is one of Config.Admins, and may do what the
	// API's administrator routes do.
	Admin bool
}

// UserFrom returns the authenticated user of a request served by
// Config.Console; ok is false for a request that did not come through
// the handler's authentication.
func UserFrom(ctx context.Context) (u RequestUser, ok bool) {
	u, ok = ctx.Value(userKey{}).(RequestUser)
	return u, ok && u.Info != nil
}

func withUser(ctx context.Context, who *broker.ClientInfo, admin bool) context.Context {
	return context.WithValue(ctx, userKey{}, RequestUser{Info: who, Admin: admin})
}

// isAdmin: who is one of Config.Admins (an anonymous user never is).
func (h *Handler) isAdmin(who *broker.ClientInfo) bool {
	return who != nil && who.Username != "" && slices.Contains(h.cfg.Admins, who.Username)
}
