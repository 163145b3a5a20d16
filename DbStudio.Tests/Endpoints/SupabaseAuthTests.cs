// supabase-js compatibility (DESIGN §5) through HTTP: /supabase/auth/v1 speaks GoTrue's routes, JSON and error shapes
// over the same end users and tokens as /auth; /supabase/rest/v1 is the REST API, with supabase-js's schema profile.
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using DbStudio.Core.Projects;
using DbStudio.Tests.Infrastructure;

namespace DbStudio.Tests.Endpoints;

public class SupabaseAuthTests(TestApp app)
{
    private async Task<ProjectInfo> ProjectAsync()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "supabase");
        await TestApp.SqlAsync(owner, p.Id, "create table items (id serial primary key, name text, user_id uuid)");
        return p;
    }

    /// <summary>A request as auth-js sends it: apikey, the key as bearer unless a token is given, the API version header.</summary>
    private async Task<HttpResponseMessage> Send(ProjectInfo p, HttpMethod method, string path, object? body = null, string? bearer = null,
        bool apiVersion = true, string? apikey = null)
    {
        var req = new HttpRequestMessage(method, $"/db/{p.Id}/supabase/auth/v1/{path}") { Content = body is null ? null : JsonContent.Create(body) };
        req.Headers.Add("apikey", apikey ?? p.AnonKey);
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer ?? apikey ?? p.AnonKey);
        if (apiVersion) req.Headers.Add("X-Supabase-Api-Version", "2024-01-01");
        return await app.Factory.CreateClient().SendAsync(req);
    }

    private static async Task<JsonElement> Json(HttpResponseMessage r) => await r.Content.ReadFromJsonAsync<JsonElement>();

    private static async Task<JsonElement> AssertError(HttpResponseMessage r, HttpStatusCode status, string code)
    {
        Assert.Equal(status, r.StatusCode);
        var e = await Json(r);
        Assert.Equal(code, e.GetProperty("code").GetString());
        Assert.False(string.IsNullOrEmpty(e.GetProperty("message").GetString()));
        Assert.Equal("2024-01-01", r.Headers.GetValues("X-Supabase-Api-Version").Single());
        return e;
    }

    [Fact]
    public async Task Signup_password_grant_user_refresh_and_logout_speak_gotrue()
    {
        var p = await ProjectAsync();
        var signup = await Send(p, HttpMethod.Post, "signup", new { email = "ann@example.com", password = "ann password", gotrue_meta_security = new { } });
        Assert.Equal(HttpStatusCode.OK, signup.StatusCode);
        var s = await Json(signup);
        Assert.Equal("bearer", s.GetProperty("token_type").GetString());
        Assert.Equal(3600, s.GetProperty("expires_in").GetInt32());
        var expiresAt = s.GetProperty("expires_at").GetInt64();
        Assert.InRange(expiresAt - DateTimeOffset.UtcNow.ToUnixTimeSeconds(), 3500, 3700);
        var user = s.GetProperty("user");
        var userId = user.GetProperty("id").GetString();
        Assert.True(Guid.TryParse(userId, out _));
        Assert.Equal("authenticated", user.GetProperty("aud").GetString());
        Assert.Equal("authenticated", user.GetProperty("role").GetString());
        Assert.Equal("ann@example.com", user.GetProperty("email").GetString());
        Assert.Equal("email", user.GetProperty("app_metadata").GetProperty("provider").GetString());
        Assert.Equal("user", user.GetProperty("app_metadata").GetProperty("role").GetString());
        Assert.Equal(JsonValueKind.Object, user.GetProperty("user_metadata").ValueKind);
        Assert.False(string.IsNullOrEmpty(user.GetProperty("created_at").GetString()));

        var login = await Send(p, HttpMethod.Post, "token?grant_type=password", new { email = "ann@example.com", password = "ann password" });
        Assert.Equal(HttpStatusCode.OK, login.StatusCode);
        var session = await Json(login);
        var access = session.GetProperty("access_token").GetString()!;

        // The same token is what /auth and REST accept.
        var me = await Json(await Send(p, HttpMethod.Get, "user", bearer: access));
        Assert.Equal(userId, me.GetProperty("id").GetString());
        var rest = new HttpRequestMessage(HttpMethod.Post, $"/db/{p.Id}/supabase/rest/v1/items") { Content = JsonContent.Create(new { name = "mine" }) };
        rest.Headers.Add("apikey", p.AnonKey);
        rest.Headers.Add("Content-Profile", "public");
        rest.Headers.Authorization = new AuthenticationHeaderValue("Bearer", access);
        rest.Headers.Add("Prefer", "return=representation");
        var inserted = await app.Factory.CreateClient().SendAsync(rest);
        Assert.Equal(HttpStatusCode.Created, inserted.StatusCode);
        Assert.Equal(userId, (await Json(inserted))[0].GetProperty("user_id").GetString());

        var refreshed = await Send(p, HttpMethod.Post, "token?grant_type=refresh_token", new { refresh_token = session.GetProperty("refresh_token").GetString() });
        Assert.Equal(HttpStatusCode.OK, refreshed.StatusCode);
        var next = (await Json(refreshed)).GetProperty("access_token").GetString()!;
        await AssertError(await Send(p, HttpMethod.Get, "user", bearer: access), HttpStatusCode.Forbidden, "session_not_found");
        await AssertError(await Send(p, HttpMethod.Post, "token?grant_type=refresh_token", new { refresh_token = session.GetProperty("refresh_token").GetString() }),
            HttpStatusCode.BadRequest, "refresh_token_not_found");

        // A spent refresh token used again ends its whole login (the session it was spent for too).
        Assert.Equal(HttpStatusCode.Forbidden, (await Send(p, HttpMethod.Get, "user", bearer: next)).StatusCode);

        // Global logout (auth-js's default) ends every session of the user; local ends only its own.
        async Task<string> SignIn() => (await Json(await Send(p, HttpMethod.Post, "token?grant_type=password",
            new { email = "ann@example.com", password = "ann password" }))).GetProperty("access_token").GetString()!;
        var (first, second, third) = (await SignIn(), await SignIn(), await SignIn());
        Assert.Equal(HttpStatusCode.NoContent, (await Send(p, HttpMethod.Post, "logout?scope=local", bearer: third)).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await Send(p, HttpMethod.Get, "user", bearer: third)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Send(p, HttpMethod.Get, "user", bearer: second)).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await Send(p, HttpMethod.Post, "logout", bearer: first)).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await Send(p, HttpMethod.Get, "user", bearer: first)).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await Send(p, HttpMethod.Get, "user", bearer: second)).StatusCode);
    }

    [Fact]
    public async Task Errors_come_in_gotrues_shapes()
    {
        var p = await ProjectAsync();
        Assert.Equal(HttpStatusCode.OK, (await Send(p, HttpMethod.Post, "signup", new { email = "bo@example.com", password = "bo password" })).StatusCode);
        await AssertError(await Send(p, HttpMethod.Post, "signup", new { email = "bo@example.com", password = "bo password" }),
            HttpStatusCode.UnprocessableEntity, "user_already_exists");
        var weak = await AssertError(await Send(p, HttpMethod.Post, "signup", new { email = "cy@example.com", password = "short" }),
            HttpStatusCode.UnprocessableEntity, "weak_password");
        Assert.Equal("length", weak.GetProperty("weak_password").GetProperty("reasons")[0].GetString());
        await AssertError(await Send(p, HttpMethod.Post, "signup", new { email = "not an email", password = "long enough" }),
            HttpStatusCode.BadRequest, "validation_failed");
        await AssertError(await Send(p, HttpMethod.Post, "signup", new { email = "dee@example.com", password = "long enough", data = new { name = "Dee" } }),
            HttpStatusCode.BadRequest, "validation_failed");
        await AssertError(await Send(p, HttpMethod.Post, "token?grant_type=password", new { email = "bo@example.com", password = "wrong password" }),
            HttpStatusCode.BadRequest, "invalid_credentials");
        await AssertError(await Send(p, HttpMethod.Post, "token?grant_type=password", new { email = "nobody@example.com", password = "wrong password" }),
            HttpStatusCode.BadRequest, "invalid_credentials");
        await AssertError(await Send(p, HttpMethod.Post, "token?grant_type=magic", new { }), HttpStatusCode.BadRequest, "invalid_credentials");
        await AssertError(await Send(p, HttpMethod.Post, "token?grant_type=refresh_token", new { refresh_token = "made-up" }),
            HttpStatusCode.BadRequest, "refresh_token_not_found");
        await AssertError(await Send(p, HttpMethod.Get, "user"), HttpStatusCode.Unauthorized, "no_authorization");
        await AssertError(await Send(p, HttpMethod.Get, "user", bearer: "made-up"), HttpStatusCode.Forbidden, "session_not_found");
        await AssertError(await Send(p, HttpMethod.Post, "logout?scope=everywhere", bearer: "made-up"), HttpStatusCode.BadRequest, "validation_failed");
        await AssertError(await Send(p, HttpMethod.Post, "signup", new { email = "e@example.com", password = "long enough" }, apikey: "anon_wrong"),
            HttpStatusCode.Unauthorized, "no_api_key");
        await AssertError(await Send(p, HttpMethod.Post, "otp", new { email = "bo@example.com" }), HttpStatusCode.NotFound, "not_found");

        // Malformed bodies: 400, never 500.
        var raw = new HttpRequestMessage(HttpMethod.Post, $"/db/{p.Id}/supabase/auth/v1/token?grant_type=password")
            { Content = new StringContent("{not json", System.Text.Encoding.UTF8, "application/json") };
        raw.Headers.Add("apikey", p.AnonKey);
        Assert.Equal(HttpStatusCode.BadRequest, (await app.Factory.CreateClient().SendAsync(raw)).StatusCode);

        // Without the API version header: GoTrue's older shape {code: status, error_code, msg}.
        var legacy = await Json(await Send(p, HttpMethod.Post, "token?grant_type=password", new { email = "bo@example.com", password = "wrong password" }, apiVersion: false));
        Assert.Equal(400, legacy.GetProperty("code").GetInt32());
        Assert.Equal("invalid_credentials", legacy.GetProperty("error_code").GetString());
        Assert.Equal("Invalid login credentials", legacy.GetProperty("msg").GetString());
    }

    [Fact]
    public async Task The_rest_path_is_the_rest_api_and_only_the_public_profile_exists()
    {
        var p = await ProjectAsync();
        async Task<HttpResponseMessage> Get(string path, string? profile, string? bearer)
        {
            var req = new HttpRequestMessage(HttpMethod.Get, $"/db/{p.Id}/supabase/rest/v1/{path}");
            req.Headers.Add("apikey", p.AnonKey);
            if (bearer is not null) req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
            if (profile is not null) req.Headers.Add("Accept-Profile", profile);
            return await app.Factory.CreateClient().SendAsync(req);
        }
        // The DB_API_KEY as bearer reads everything; the ANON key as bearer is the anon key (items is private to anon).
        Assert.Equal(HttpStatusCode.OK, (await Get("items?select=id", "public", p.ApiKey)).StatusCode);
        var asAnon = await Get("items?select=id", "public", p.AnonKey);
        Assert.Equal(HttpStatusCode.Unauthorized, asAnon.StatusCode);
        Assert.Equal("42501", (await Json(asAnon)).GetProperty("code").GetString()); // refused by the policy, as anon: the key was accepted
        var wrong = await Get("items?select=id", "auth", p.ApiKey);
        Assert.Equal(HttpStatusCode.NotAcceptable, wrong.StatusCode);
        Assert.Equal("PGRST106", (await Json(wrong)).GetProperty("code").GetString());
        Assert.Equal(HttpStatusCode.OK, (await Get("", null, p.ApiKey)).StatusCode); // the OpenAPI document
        Assert.Equal(HttpStatusCode.NotFound, (await Get("nosuchtable", "public", p.ApiKey)).StatusCode);
    }
}
