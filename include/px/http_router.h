/*
 * Request routing: a table of path patterns compiled once, matched in C for
 * every request.
 *
 * Patterns (all start with '/'; they are compared with the path as sent, still
 * percent-encoded, without the query):
 *
 *   exact   "/json"            the whole path, byte for byte
 *   param   "/wiki/{name}"     a "{name}" (a letter or '_', then letters, digits
 *           "/f/{id}.txt"      or '_') matches one or more bytes other than '/';
 *           "/{x}-{y}"         the rest of its segment is literal. Where a
 *                              segment holds several, the earlier ones take as
 *                              many bytes as they can ("/{x}-{y}" on "/a-b-c":
 *                              x "a-b", y "c"), as a regex would. A '{' that
 *                              does not open such a name is literal.
 *   prefix  "/static/" "*"     a pattern ending in '/' and '*': every path that
 *                              starts with "/static/" (the prefix is literal,
 *                              braces included); what follows it is the
 *                              route's one parameter, named "rest" (the
 *                              original PyParallel passed it so).
 *
 * Precedence, whatever the order of registration: an exact route first, then
 * the first param route registered that matches, then the longest matching
 * prefix. The path alone picks the route; the method is checked afterwards, so
 * a known path with a method its route does not take is a 405, never a 404 and
 * never another route.
 *
 * Work per match is O(routes x path length), with no backtracking (times the
 * length of a literal between two parameters of one segment). Build the
 * table on one thread before matching; matching only reads it, so any number
 * of threads may match at once.
 */
#ifndef PX_HTTP_ROUTER_H
#define PX_HTTP_ROUTER_H

#include "px/common.h"

#define PX_HTTP_ROUTE_MAX_PARAMS 8   /* parameters of one route, rest included */
#define PX_HTTP_ROUTE_MAX_METHODS 16 /* methods one route takes */

typedef struct px_http_router px_http_router_t;

typedef struct px_http_match {
    int route;        /* id of the route whose pattern matched the path, or -1 */
    unsigned nparams; /* parameters in params */
    px_view_t params[PX_HTTP_ROUTE_MAX_PARAMS]; /* in pattern order: views into
                            the path, not decoded (see px_http_unquote) */
} px_http_match_t;

/* An empty table. 0 or -ENOMEM. */
int px_http_router_new(px_http_router_t **out);
void px_http_router_free(px_http_router_t *r);

/* Compile pattern[0..len) into a route taking the nmethods method tokens of
 * methods (compared case-sensitively; none: every method is refused with 405).
 * Everything is copied.
 *
 * Returns the route's id: 0 for the first route added, then 1, 2... Returns
 * -EINVAL for a pattern not starting with '/', a repeated parameter name, or a
 * method that is not a token; -E2BIG for more
 * than PX_HTTP_ROUTE_MAX_PARAMS parameters or PX_HTTP_ROUTE_MAX_METHODS
 * methods; -EEXIST when the same pattern is already routed; -ENOMEM. */
int px_http_router_add(px_http_router_t *r, const char *pattern, size_t len,
                       const char *const *methods, size_t nmethods);

/* Route a request. Fills m and returns:
 *   the route id (>= 0)  the path matched a route that takes the method;
 *   -EPERM               the path matched route m->route, which does not take
 *                        the method: answer 405 with px_http_router_allow;
 *   -ENOENT              no route matched the path (m->route is -1): 404.
 * Reads nothing outside method and path. */
int px_http_router_match(const px_http_router_t *r, px_view_t method, px_view_t path,
                         px_http_match_t *m);

/* Number of routes added. */
size_t px_http_router_count(const px_http_router_t *r);

/* The methods of route id as an Allow header value ("GET, HEAD"), valid as
 * long as the table; an empty view for an unknown id. */
px_view_t px_http_router_allow(const px_http_router_t *r, int id);

/* The names of route id's parameters, in the order of px_http_match_t's
 * params: copies up to cap views (valid as long as the table) to names and
 * returns how many the route has. */
unsigned px_http_router_param_names(const px_http_router_t *r, int id, px_view_t *names,
                                    unsigned cap);

#endif
