// DESIGN §3–§4 as a table: access policy × credential × verb → expected outcome, each cell one test.
// Every cell works on two fresh rows of its own (one owned by alice, one by nobody), tagged uniquely.
// Outcomes: "401"/"403" = refused; "201" = inserted; "200:n" = succeeded touching/seeing n of the two rows.
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using DbStudio.Core.Projects;
using DbStudio.Tests.Infrastructure;

namespace DbStudio.Tests.Endpoints;

public class PolicyMatrixTests(TestApp app)
{
    public static readonly TheoryData<string, string, string, string> Cells = Build(
        //  table          credential  select   insert  update   delete
        ("defaults",    "nokey",    "401",   "401",  "401",   "401"),
        ("defaults",    "otherkey", "401",   "401",  "401",   "401"),
        ("defaults",    "anon",     "401",   "401",  "401",   "401"),
        ("defaults",    "user",     "200:1", "201",  "200:1", "200:1"),
        ("defaults",    "otheruser","200:0", "201",  "200:0", "200:0"),
        ("defaults",    "adminuser","200:2", "201",  "200:1", "200:1"),
        ("defaults",    "dak",      "200:2", "201",  "200:1", "200:1"),

        ("public_read", "nokey",    "401",   "401",  "401",   "401"),
        ("public_read", "otherkey", "401",   "401",  "401",   "401"),
        ("public_read", "anon",     "200:2", "401",  "401",   "401"),
        ("public_read", "user",     "200:2", "201",  "200:1", "200:1"),
        ("public_read", "otheruser","200:2", "201",  "200:0", "200:0"),
        ("public_read", "adminuser","200:2", "201",  "200:1", "200:1"),
        ("public_read", "dak",      "200:2", "201",  "200:1", "200:1"),

        ("anon_write",  "nokey",    "401",   "401",  "401",   "401"),
        ("anon_write",  "otherkey", "401",   "401",  "401",   "401"),
        ("anon_write",  "anon",     "401",   "201",  "401",   "401"),
        ("anon_write",  "user",     "403",   "403",  "403",   "403"),
        ("anon_write",  "otheruser","403",   "403",  "403",   "403"),
        ("anon_write",  "adminuser","403",   "403",  "403",   "403"),
        ("anon_write",  "dak",      "200:2", "201",  "200:1", "200:1"),

        ("closed",      "nokey",    "401",   "401",  "401",   "401"),
        ("closed",      "otherkey", "401",   "401",  "401",   "401"),
        ("closed",      "anon",     "401",   "401",  "401",   "401"),
        ("closed",      "user",     "403",   "403",  "403",   "403"),
        ("closed",      "otheruser","403",   "403",  "403",   "403"),
        ("closed",      "adminuser","403",   "403",  "403",   "403"),
        ("closed",      "dak",      "200:2", "201",  "200:1", "200:1"));

    private static TheoryData<string, string, string, string> Build(params (string Table, string Cred, string Select, string Insert, string Update, string Delete)[] rows)
    {
        var data = new TheoryData<string, string, string, string>();
        foreach (var r in rows)
        {
            data.Add(r.Table, r.Cred, "select", r.Select);
            data.Add(r.Table, r.Cred, "insert", r.Insert);
            data.Add(r.Table, r.Cred, "update", r.Update);
            data.Add(r.Table, r.Cred, "delete", r.Delete);
        }
        return data;
    }

    private sealed record World(ProjectInfo Project, ProjectInfo Other, Dictionary<string, string> Tokens, string AliceId);

    private static Task<World>? _world;
    private static readonly Lock Gate = new();

    private Task<World> WorldAsync()
    {
        lock (Gate) return _world ??= SetUpAsync();
    }

    private async Task<World> SetUpAsync()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "matrix");
        var other = await TestApp.CreateProjectAsync(owner, "matrix other");
        var sql = string.Join(";", new[] { "defaults", "public_read", "anon_write", "closed" }
            .Select(t => $"create table {t} (id serial primary key, tag text, note text, user_id uuid)"));
        Assert.All(await TestApp.SqlAsync(owner, p.Id, sql), r => Assert.False(r.TryGetProperty("error", out _)));
        async Task Access(string table, object settings) =>
            (await owner.PutAsJsonAsync($"/api/projects/{p.Id}/tables/{table}/access", settings)).EnsureSuccessStatusCode();
        await Access("public_read", new { anon_select = true, anon_insert = false, auth_insert = true, auth_select_own = true, auth_update_own = true, auth_delete_own = true, user_id_col = "user_id" });
        await Access("anon_write", new { anon_select = false, anon_insert = true, auth_insert = false, auth_select_own = false, auth_update_own = false, auth_delete_own = false, user_id_col = "user_id" });
        await Access("closed", new { anon_select = false, anon_insert = false, auth_insert = false, auth_select_own = false, auth_update_own = false, auth_delete_own = false, user_id_col = "user_id" });

        var http = app.Factory.CreateClient();
        async Task<JsonElement> Signup(string who)
        {
            var req = new HttpRequestMessage(HttpMethod.Post, $"/db/{p.Id}/auth/signup")
            {
                Content = JsonContent.Create(new { email = $"{who}@example.com", password = $"{who} password" }),
            };
            req.Headers.Add("apikey", p.AnonKey);
            var res = await http.SendAsync(req);
            Assert.Equal(System.Net.HttpStatusCode.Created, res.StatusCode);
            return await res.Content.ReadFromJsonAsync<JsonElement>();
        }
        var alice = await Signup("alice");
        var bob = await Signup("bob");
        var carol = await Signup("carol");
        var promote = new HttpRequestMessage(HttpMethod.Patch, $"/db/{p.Id}/auth/users/{carol.GetProperty("user").GetProperty("id").GetString()}")
        {
            Content = JsonContent.Create(new { role = "admin" }),
        };
        promote.Headers.Authorization = new AuthenticationHeaderValue("Bearer", p.ApiKey);
        (await http.SendAsync(promote)).EnsureSuccessStatusCode();

        var tokens = new Dictionary<string, string>
        {
            ["user"] = alice.GetProperty("access_token").GetString()!,
            ["otheruser"] = bob.GetProperty("access_token").GetString()!,
            ["adminuser"] = carol.GetProperty("access_token").GetString()!,
        };
        return new World(p, other, tokens, alice.GetProperty("user").GetProperty("id").GetString()!);
    }

    [Theory]
    [MemberData(nameof(Cells))]
    public async Task Cell(string table, string credential, string verb, string expected)
    {
        var w = await WorldAsync();
        var http = app.Factory.CreateClient();
        var tag = Guid.NewGuid().ToString("N");

        // Two fresh rows through the DB_API_KEY: one alice's, one nobody's.
        var seed = new HttpRequestMessage(HttpMethod.Post, $"/db/{w.Project.Id}/rest/{table}")
        {
            Content = new StringContent(JsonSerializer.Serialize(new object[] { new { tag, note = "a", user_id = w.AliceId }, new { tag, note = "b", user_id = (string?)null } }),
                Encoding.UTF8, "application/json"),
        };
        seed.Headers.Authorization = new AuthenticationHeaderValue("Bearer", w.Project.ApiKey);
        seed.Headers.Add("Prefer", "return=representation");
        var seeded = await http.SendAsync(seed);
        Assert.Equal(System.Net.HttpStatusCode.Created, seeded.StatusCode);
        var aliceRow = (await seeded.Content.ReadFromJsonAsync<JsonElement>())[0].GetProperty("id").GetInt32();

        var req = verb switch
        {
            "select" => new HttpRequestMessage(HttpMethod.Get, $"/db/{w.Project.Id}/rest/{table}?tag=eq.{tag}"),
            "insert" => new HttpRequestMessage(HttpMethod.Post, $"/db/{w.Project.Id}/rest/{table}")
                { Content = new StringContent($"{{\"tag\":\"{tag}\",\"note\":\"new\"}}", Encoding.UTF8, "application/json") },
            "update" => new HttpRequestMessage(HttpMethod.Patch, $"/db/{w.Project.Id}/rest/{table}?id=eq.{aliceRow}")
                { Content = new StringContent("{\"note\":\"changed\"}", Encoding.UTF8, "application/json") },
            _ => new HttpRequestMessage(HttpMethod.Delete, $"/db/{w.Project.Id}/rest/{table}?id=eq.{aliceRow}"),
        };
        if (verb is "update" or "delete") req.Headers.Add("Prefer", "return=representation");
        switch (credential)
        {
            case "anon": req.Headers.Add("apikey", w.Project.AnonKey); break;
            case "otherkey": req.Headers.Add("apikey", w.Other.AnonKey); break;
            case "dak": req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", w.Project.ApiKey); break;
            case "nokey": break;
            default:
                req.Headers.Add("apikey", w.Project.AnonKey);
                req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", w.Tokens[credential]);
                break;
        }
        var res = await http.SendAsync(req);
        var body = await res.Content.ReadAsStringAsync();
        var status = (int)res.StatusCode;
        var outcome = expected.Contains(':') && status == 200 ? $"200:{JsonDocument.Parse(body).RootElement.GetArrayLength()}" : status.ToString();
        Assert.True(expected == outcome, $"{table} × {credential} × {verb}: expected {expected}, got {outcome} {body}");
        if (status is 401 or 403)
        {
            var error = JsonDocument.Parse(body).RootElement; // refusals carry the error JSON
            Assert.True(error.TryGetProperty("code", out _) && error.TryGetProperty("message", out _), body);
        }
    }
}
