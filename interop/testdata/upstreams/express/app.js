// An Express 4 API for proxy/differential_test.go, written the way Express
// apps usually are: default (case-insensitive, non-strict) routing and the
// method-override middleware for every spelling its README shows. Each route
// answers with its name and the method it ran for. It prints "PORT n" once
// it listens on a loopback port of its own choosing.
const express = require('express');
const methodOverride = require('method-override');

const app = express();
app.use(methodOverride('X-HTTP-Method-Override'));
app.use(methodOverride('X-HTTP-Method'));
app.use(methodOverride('X-Method-Override'));
app.use(methodOverride('_method')); // ?_method=DELETE on a POST
// _method in a form body (method-override's README, "custom logic"; what
// Rails, Laravel and Symfony do by default for HTML forms).
app.use(express.urlencoded({ extended: false }));
app.use(methodOverride((req) => {
  if (req.body && typeof req.body === 'object' && '_method' in req.body) {
    const method = req.body._method;
    delete req.body._method;
    return method;
  }
}));

const served = (route) => (req, res) =>
  res.json({ upstream: 'express', route, method: req.method, path: req.path });

app.get('/static/*', served('static'));
app.get('/status', served('status'));
app.all(['/admin', '/admin/*'], served('admin'));
app.delete('/api/users/:id', served('users_delete'));
app.get('/api/users/:id', served('users_get'));
app.all('*', served('unmatched'));

const server = app.listen(0, '127.0.0.1', () => {
  console.log('PORT ' + server.address().port);
});
