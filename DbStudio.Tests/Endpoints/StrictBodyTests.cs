// Strict management inputs (issue 12): every JSON body of the management API binds only with exactly its keys, spelled
// as documented, each key without a default present and of the right JSON type. Anything else is a 400 that names the
// keys — never a 200 that quietly defaults (PUT …/access with {} used to switch every policy off), never a 500.
using System.Net;
using System.Text;
using System.Text.Json;
using DbStudio.Tests.Infrastructure;

namespace DbStudio.Tests.Endpoints;

public class StrictBodyTests(TestApp app)
{
    private static async Task<HttpResponseMessage> SendAsync(HttpClient client, HttpMethod method, string path, string json,
        string contentType = "application/json", Action<HttpRequestMessage>? headers = null)
    {
        var req = new HttpRequestMessage(method, path) { Content = new StringContent(json, Encoding.UTF8, contentType) };
        headers?.Invoke(req);
        return await client.SendAsync(req);
    }

    private const string FullAccess = """
        {"anon_select":true,"anon_insert":false,"auth_insert":true,"auth_select_own":true,"auth_update_own":false,"auth_delete_own":true,"user_id_col":"user_id"}
        """;

    [Fact]
    public async Task Put_access_refuses_unknown_missing_and_mistyped_keys_and_changes_nothing()
    {
        var client = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(client);
        await TestApp.SqlAsync(client, p.Id, "create table notes (id serial primary key, body text, user_id uuid)");
        var path = $"/api/projects/{p.Id}/tables/notes/access";
        var before = await client.GetStringAsync(path);

        async Task<string> Refused(string json, params string[] named)
        {
            var res = await SendAsync(client, HttpMethod.Put, path, json);
            var body = await res.Content.ReadAsStringAsync();
            Assert.True(res.StatusCode == HttpStatusCode.BadRequest, $"{json} → {(int)res.StatusCode} {body}");
            var problem = JsonDocument.Parse(body).RootElement;
            var detail = problem.GetProperty("detail").GetString()!;
            foreach (var key in named)
            {
                Assert.Contains($"{key}", detail);
                Assert.True(problem.GetProperty("errors").TryGetProperty(key, out _), $"errors has no '{key}': {body}");
            }
            return detail;
        }

        // camelCase keys: each one unknown, each documented one missing.
        var camel = await Refused("""
            {"anonSelect":true,"anonInsert":false,"authInsert":true,"authSelectOwn":true,"authUpdateOwn":true,"authDeleteOwn":true,"userIdCol":null}
            """, "anonSelect", "userIdCol", "anon_select", "user_id_col");
        Assert.Contains("unknown keys", camel);
        Assert.Contains("missing keys", camel);
        await Refused("{}", "anon_select", "anon_insert", "auth_insert", "auth_select_own", "auth_update_own", "auth_delete_own", "user_id_col");
        await Refused("""{"anon_select":true}""", "auth_delete_own", "user_id_col");
        await Refused(FullAccess.Replace("}", ""","extra":1}"""), "extra");
        await Refused(FullAccess.Replace("\"anon_select\"", "\"ANON_SELECT\""), "ANON_SELECT", "anon_select");
        await Refused(FullAccess.Replace("\"anon_insert\":false", "\"anon_insert\":false,\"anon_insert\":true"), "anon_insert");
        // Wrong JSON types: 400 naming the key, never 500.
        Assert.Contains("true or false", await Refused(FullAccess.Replace("\"anon_select\":true", "\"anon_select\":\"yes\""), "anon_select"));
        await Refused(FullAccess.Replace("\"anon_select\":true", "\"anon_select\":1"), "anon_select");
        await Refused(FullAccess.Replace("\"anon_select\":true", "\"anon_select\":null"), "anon_select");
        await Refused(FullAccess.Replace("\"user_id_col\":\"user_id\"", "\"user_id_col\":42"), "user_id_col");
        await Refused(FullAccess.Replace("\"user_id_col\":\"user_id\"", "\"user_id_col\":[\"user_id\"]"), "user_id_col");
        foreach (var notAnObject in new[] { "[]", "null", "true", "\"x\"", "{", "", "{\"anon_select\":tru}" })
            await Refused(notAnObject, "body");
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, (await SendAsync(client, HttpMethod.Put, path, FullAccess, "text/plain")).StatusCode);
        Assert.Equal(before, await client.GetStringAsync(path));

        // The full, exact body is a full replace; user_id_col may be null (present, but empty).
        var ok = await SendAsync(client, HttpMethod.Put, path, FullAccess);
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        var saved = JsonDocument.Parse(await client.GetStringAsync(path)).RootElement;
        Assert.True(saved.GetProperty("anon_select").GetBoolean());
        Assert.False(saved.GetProperty("auth_update_own").GetBoolean());
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(client, HttpMethod.Put, path, FullAccess.Replace("\"user_id\"", "null"))).StatusCode);
    }

    [Fact]
    public async Task Every_management_body_is_bound_strictly()
    {
        var client = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(client);
        async Task Refused(HttpMethod method, string path, string json, string named, Action<HttpRequestMessage>? headers = null)
        {
            var res = await SendAsync(client, method, path, json, headers: headers);
            var body = await res.Content.ReadAsStringAsync();
            Assert.True(res.StatusCode == HttpStatusCode.BadRequest, $"{method} {path} {json} → {(int)res.StatusCode} {body}");
            Assert.Contains(named, body);
        }

        await Refused(HttpMethod.Post, "/api/projects", """{"nam":"x"}""", "nam");
        await Refused(HttpMethod.Post, "/api/projects", """{"Name":"x"}""", "Name");
        await Refused(HttpMethod.Post, "/api/projects", """{"name":5}""", "name");
        await Refused(HttpMethod.Post, "/api/projects", """{"name":"x","owner":"someone else"}""", "owner");
        await Refused(HttpMethod.Post, $"/api/projects/{p.Id}/sql", """{"query":"select 1"}""", "query");
        await Refused(HttpMethod.Post, $"/api/projects/{p.Id}/sql", """{"sql":["select 1"]}""", "sql");
        await Refused(HttpMethod.Post, $"/api/projects/{p.Id}/sql", "{}", "sql");
        await Refused(HttpMethod.Post, $"/api/projects/{p.Id}/assistant/sql", """{"text":"<sql>select 1</sql>","model":"x"}""", "model");
        await Refused(HttpMethod.Post, "/api/auth/register", """{"email":"x@example.com","password":"long enough pw","role":"admin"}""", "role");
        await Refused(HttpMethod.Post, "/api/auth/login", """{"Email":"x@example.com","Password":"long enough pw"}""", "Email");
        await Refused(HttpMethod.Post, "/api/auth/login", """{"email":"x@example.com"}""", "password");
        await Refused(HttpMethod.Post, "/api/auth/login", """{"email":"x@example.com","password":12345678}""", "password");

        // End-user auth answers in its own error shape: {"code":"validation_failed","message":…}.
        void Anon(HttpRequestMessage r) => r.Headers.Add("apikey", p.AnonKey);
        void Admin(HttpRequestMessage r) => r.Headers.Authorization = new("Bearer", p.ApiKey);
        await Refused(HttpMethod.Post, $"/db/{p.Id}/auth/signup", """{"email":"e@example.com","password":"long enough","data":{}}""", "data", Anon);
        await Refused(HttpMethod.Post, $"/db/{p.Id}/auth/login", """{"email":"e@example.com"}""", "password", Anon);
        await Refused(HttpMethod.Post, $"/db/{p.Id}/auth/refresh", """{"refreshToken":"x"}""", "refresh_token", Anon);
        await Refused(HttpMethod.Patch, $"/db/{p.Id}/auth/users/{Guid.NewGuid()}", """{"role":true}""", "role", Admin);
        var shape = await SendAsync(client, HttpMethod.Post, $"/db/{p.Id}/auth/signup", "{}", headers: Anon);
        Assert.Equal("validation_failed", (await shape.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("code").GetString());

        // The documented bodies still work.
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(client, HttpMethod.Post, $"/api/projects/{p.Id}/sql", """{"sql":"select 1"}""")).StatusCode);
        Assert.Equal(HttpStatusCode.Created, (await SendAsync(client, HttpMethod.Post, "/api/projects", """{"name":"strict"}""")).StatusCode);
        Assert.Equal(HttpStatusCode.Created, (await SendAsync(client, HttpMethod.Post, $"/db/{p.Id}/auth/signup",
            """{"email":"e@example.com","password":"long enough"}""", headers: Anon)).StatusCode);
    }
}
