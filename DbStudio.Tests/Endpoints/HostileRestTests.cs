// Hostile and malformed REST requests: each gets a 4xx with the error JSON, and nothing changes.
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using DbStudio.Core.Projects;
using DbStudio.Tests.Infrastructure;

namespace DbStudio.Tests.Endpoints;

public class HostileRestTests(TestApp app)
{
    /// <summary>(method, path and query after /rest/, body or null, extra header "Name: value" or null).</summary>
    public static readonly (string Method, string Path, string? Body, string? Header)[] Requests =
    [
        // injection through values
        ("GET", "items?id=eq.1%3B%20drop%20table%20items", null, null),
        ("GET", "items?id=in.(1,2)%3Bdrop%20table%20items", null, null),
        ("GET", "items?id=in.(1,\"2)%3B drop table items--\")", null, null),
        ("GET", "items?tags=cs.{a}'%3Bdrop%20table%20items--", null, null),
        ("GET", "items?id=gt.$$%3Bdelete%20from%20items%3B$$", null, null),
        // injection through column names
        ("GET", "items?id%22%3B%20drop%20table%20items%3B--=eq.1", null, null),
        ("GET", "items?id)%20or%20(1=eq.1", null, null),
        ("GET", "items?select=id,name%3Bdrop%20table%20items", null, null),
        ("GET", "items?select=id,(select%20count(*)%20from%20items)", null, null),
        ("GET", "items?select=id::text%3Bdrop%20table%20items", null, null),
        ("GET", "items?select=id::regclass", null, null),
        ("GET", "items?select=*,pg_sleep(5)", null, null),
        ("GET", "items?select=x:id::int%20from%20items%3B--", null, null),
        ("GET", "items?select=other:proj_x.secrets(*)", null, null),
        // injection through order, limit, offset
        ("GET", "items?order=id%3Bdrop%20table%20items", null, null),
        ("GET", "items?order=id.desc,(select%201)", null, null),
        ("GET", "items?order=id.sideways", null, null),
        ("GET", "items?order=pg_sleep(5)", null, null),
        ("GET", "items?limit=1%3Bdrop%20table%20items", null, null),
        ("GET", "items?limit=-1", null, null),
        ("GET", "items?offset=abc", null, null),
        ("GET", "items?limit=99999999999999999999999", null, null),
        // logic trees and operators
        ("GET", "items?or=(id.eq.1,drop%20table%20items)", null, null),
        ("GET", "items?or=(id.eq.1", null, null),
        ("GET", "items?or=id.eq.1", null, null),
        ("GET", "items?and=(or(or(or(or(or(or(or(or(or(or(or(or(or(or(or(or(or(id.eq.1)))))))))))))))))", null, null),
        ("GET", "items?id=xx.1", null, null),
        ("GET", "items?id=eq", null, null),
        ("GET", "items?id=is.maybe", null, null),
        ("GET", "items?id=in.1,2", null, null),
        ("GET", "items?=eq.1", null, null),
        // table names
        ("GET", "items%3Bdrop%20table%20items", null, null),
        ("GET", "..%2Fplatform.projects", null, null),
        ("GET", "pg_authid", null, null),
        ("GET", "platform.project_secrets", null, null),
        // on_conflict and columns
        ("POST", "items?on_conflict=id%3Bdrop%20table%20items", "{\"id\":1,\"name\":\"a\"}", "Prefer: resolution=merge-duplicates"),
        ("POST", "items?on_conflict=nope", "{\"id\":1,\"name\":\"a\"}", "Prefer: resolution=merge-duplicates"),
        ("POST", "items?columns=name,evil%22col", "{\"name\":\"a\"}", null),
        // malformed bodies and wrong types
        ("POST", "items", "{\"name\":", null),
        ("POST", "items", "not json at all", null),
        ("POST", "items", "", null),
        ("POST", "items", "42", null),
        ("POST", "items", "[1,2,3]", null),
        ("POST", "items", "{\"nope\":1}", null),
        ("POST", "items", "{\"id\":\"one\",\"name\":\"a\"}", null),
        ("POST", "items", "{\"name\":null}", null),
        ("POST", "items", "{\"name\":\"a\",\"price\":\"1e999999\"}", null),
        ("POST", "items", "{\"name\":\"a\",\"tags\":\"not an array\"}", null),
        ("POST", "items", "{\"name\":\"a\",\"id\":1}", null), // duplicate key
        ("POST", "items", "[{\"name\":\"ok\"},{\"name\":null}]", null), // second row fails: first must not stay
        ("POST", "items", "{\"name\":\"" + new string('x', 11 * 1024 * 1024) + "\"}", null), // over the body cap
        ("PATCH", "items?id=eq.1", "[{\"name\":\"a\"}]", null),
        ("PATCH", "items?id=eq.1", "{}", null),
        ("PATCH", "items?id=eq.1", "{\"id\":\"x\"}", null),
        // headers
        ("GET", "items", null, "Range: 10-2"),
        ("GET", "items", null, "Range: abc"),
        ("GET", "items", null, "Accept: text/xml"),
        ("GET", "items?id=gt.0", null, "Accept: application/vnd.pgrst.object+json"),
    ];

    /// <summary>Text that looks like SQL in a text value is only a value: 200 with what matches it (nothing), nothing changed.</summary>
    public static readonly (string Path, int Rows)[] Harmless =
    [
        ("items?name=eq.x'%3B%20drop%20table%20items%3B--", 0),
        ("items?name=eq.x%27)%20or%20(1%3D1", 0),
        ("items?name=like.*'%3B%20delete%20from%20items%3B--", 0),
        ("items?name=in.(\"one'); delete from items; --\")", 0),
        ("items?%22id%22=eq.1", 1), // a quoted column name is just that column
    ];

    public static TheoryData<int> Indexes() => new(Enumerable.Range(0, Requests.Length));
    public static TheoryData<int> HarmlessIndexes() => new(Enumerable.Range(0, Harmless.Length));

    private static Task<(ProjectInfo Project, HttpClient Owner)>? _world;
    private static readonly Lock Gate = new();

    private Task<(ProjectInfo, HttpClient)> WorldAsync()
    {
        lock (Gate) return _world ??= SetUp();
        async Task<(ProjectInfo, HttpClient)> SetUp()
        {
            var owner = await app.NewUserClientAsync();
            var p = await TestApp.CreateProjectAsync(owner, "hostile");
            await TestApp.SqlAsync(owner, p.Id, "create table items (id int primary key, name text not null, price numeric(8,2), tags text[]); " +
                "insert into items values (1, 'one', 1.5, '{a}'), (2, 'two', null, null)");
            return (p, owner);
        }
    }

    [Theory]
    [MemberData(nameof(Indexes))]
    public async Task Is_refused_with_4xx_and_the_error_json_and_changes_nothing(int index)
    {
        var (method, path, body, header) = Requests[index];
        var (p, owner) = await WorldAsync();
        var snapshotBefore = await Snapshot(owner, p);
        var req = new HttpRequestMessage(new HttpMethod(method), $"/db/{p.Id}/rest/{path}");
        if (body is not null) req.Content = new StringContent(body, Encoding.UTF8, "application/json");
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", p.ApiKey); // even the admin key gets no further
        if (header is not null)
        {
            var (name, value) = (header[..header.IndexOf(':')], header[(header.IndexOf(':') + 1)..].Trim());
            req.Headers.TryAddWithoutValidation(name, value);
        }
        req.Headers.ExpectContinue = body?.Length > 1024 * 1024; // as clients uploading large bodies do: the 413 comes first
        var res = await app.Factory.CreateClient().SendAsync(req);
        var text = await res.Content.ReadAsStringAsync();
        var status = (int)res.StatusCode;
        Assert.True(status is >= 400 and < 500, $"#{index} {method} {path}: {status} {Short(text)}");
        var json = JsonDocument.Parse(text).RootElement;
        Assert.True(json.TryGetProperty("code", out _) && json.TryGetProperty("message", out _), Short(text));
        Assert.Equal(snapshotBefore, await Snapshot(owner, p));
    }

    [Theory]
    [MemberData(nameof(HarmlessIndexes))]
    public async Task Sql_in_a_value_is_only_a_value(int index)
    {
        var (path, rows) = Harmless[index];
        var (p, owner) = await WorldAsync();
        var before = await Snapshot(owner, p);
        var req = new HttpRequestMessage(HttpMethod.Get, $"/db/{p.Id}/rest/{path}");
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", p.ApiKey);
        var res = await app.Factory.CreateClient().SendAsync(req);
        Assert.Equal(System.Net.HttpStatusCode.OK, res.StatusCode);
        Assert.Equal(rows, JsonDocument.Parse(await res.Content.ReadAsStringAsync()).RootElement.GetArrayLength());
        Assert.Equal(before, await Snapshot(owner, p));
    }

    [Fact]
    public void There_are_at_least_40_hostile_requests() => Assert.True(Requests.Length >= 40, $"{Requests.Length}");

    private static async Task<string> Snapshot(HttpClient owner, ProjectInfo p)
    {
        var r = await TestApp.SqlAsync(owner, p.Id,
            "select coalesce(string_agg(id || ':' || name || ':' || coalesce(price::text, '-'), ',' order by id), '') from items");
        return r[0].GetProperty("rows")[0][0].GetString()!;
    }

    private static string Short(string s) => s.Length > 300 ? s[..300] : s;
}
