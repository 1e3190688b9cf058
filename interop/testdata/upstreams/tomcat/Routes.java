// An embedded Tomcat 10.1 API for proxy/differential_test.go: one servlet per
// route, mapped as a servlet application would map it. Each servlet answers
// with the route's name, the method it ran for and the path Tomcat routed on
// (servlet path + path info, after Tomcat removed ;parameters and resolved
// dot segments). Prints "PORT n" once it listens on a loopback port of its
// own choosing. Compiled by the test into a temporary directory.

import java.io.File;
import java.io.IOException;

import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import org.apache.catalina.Context;
import org.apache.catalina.startup.Tomcat;

public class Routes {
    static void served(HttpServletRequest req, HttpServletResponse resp, String route, String method) throws IOException {
        String path = req.getServletPath() + (req.getPathInfo() == null ? "" : req.getPathInfo());
        resp.setContentType("application/json");
        resp.getWriter().write("{\"upstream\":\"tomcat\",\"route\":\"" + route + "\",\"method\":\"" + method
                + "\",\"path\":\"" + path.replace("\\", "\\\\").replace("\"", "\\\"") + "\"}");
    }

    /** GET (and HEAD) only, like a static file servlet. */
    static class Get extends HttpServlet {
        final String route;
        Get(String route) { this.route = route; }
        @Override protected void doGet(HttpServletRequest q, HttpServletResponse s) throws IOException { served(q, s, route, "GET"); }
    }

    /** Every method HttpServlet dispatches. */
    static class Admin extends HttpServlet {
        @Override protected void doGet(HttpServletRequest q, HttpServletResponse s) throws IOException { served(q, s, "admin", "GET"); }
        @Override protected void doPost(HttpServletRequest q, HttpServletResponse s) throws IOException { served(q, s, "admin", "POST"); }
        @Override protected void doPut(HttpServletRequest q, HttpServletResponse s) throws IOException { served(q, s, "admin", "PUT"); }
        @Override protected void doDelete(HttpServletRequest q, HttpServletResponse s) throws IOException { served(q, s, "admin", "DELETE"); }
    }

    /**
     * /api/users/{id}: one path segment after /api/users/, with an optional
     * trailing slash as Spring MVC 5 matched it by default.
     */
    static class Users extends HttpServlet {
        static boolean isID(HttpServletRequest q) {
            String p = q.getPathInfo();
            return p != null && p.matches("/[^/]+/?");
        }
        @Override protected void doGet(HttpServletRequest q, HttpServletResponse s) throws IOException {
            served(q, s, isID(q) ? "users_get" : "unmatched", "GET");
        }
        @Override protected void doDelete(HttpServletRequest q, HttpServletResponse s) throws IOException {
            served(q, s, isID(q) ? "users_delete" : "unmatched", "DELETE");
        }
        @Override protected void doPost(HttpServletRequest q, HttpServletResponse s) throws IOException { served(q, s, "unmatched", "POST"); }
        @Override protected void doPut(HttpServletRequest q, HttpServletResponse s) throws IOException { served(q, s, "unmatched", "PUT"); }
    }

    /** The default servlet: anything no other mapping takes, any method. */
    static class Unmatched extends HttpServlet {
        @Override protected void service(HttpServletRequest q, HttpServletResponse s) throws IOException {
            served(q, s, "unmatched", q.getMethod());
        }
    }

    public static void main(String[] args) throws Exception {
        File base = new File(args[0]);
        Tomcat tomcat = new Tomcat();
        tomcat.setBaseDir(base.getAbsolutePath());
        tomcat.setHostname("127.0.0.1");
        tomcat.getConnector().setProperty("address", "127.0.0.1");
        tomcat.getConnector().setPort(0);
        Context ctx = tomcat.addContext("", base.getAbsolutePath());
        add(ctx, "static", new Get("static"), "/static/*");
        add(ctx, "status", new Get("status"), "/status");
        add(ctx, "admin", new Admin(), "/admin/*");
        add(ctx, "users", new Users(), "/api/users/*");
        add(ctx, "unmatched", new Unmatched(), "/");
        tomcat.start();
        System.out.println("PORT " + tomcat.getConnector().getLocalPort());
        System.out.flush();
        tomcat.getServer().await();
    }

    static void add(Context ctx, String name, HttpServlet servlet, String mapping) {
        Tomcat.addServlet(ctx, name, servlet);
        ctx.addServletMapping(mapping, name);
    }
}
