// The Schema tab's DDL on a real PostgreSQL: every supported type, secure defaults at once, errors as data.
using DbStudio.Core.Schema;
using DbStudio.Tests.Infrastructure;

namespace DbStudio.Tests.Integration;

public class SchemaEditorTests(TestApp app)
{
    private async Task<(HttpClient Client, string Id)> ProjectAsync()
    {
        var client = await app.NewUserClientAsync();
        return (client, (await TestApp.CreateProjectAsync(client)).Id);
    }

    private static async Task<string> Scalar(HttpClient c, string id, string sql) =>
        (await TestApp.SqlAsync(c, id, sql))[0].GetProperty("rows")[0][0].ToString();

    [Fact]
    public async Task Creates_a_table_with_every_supported_type_and_protects_it_at_once()
    {
        var (c, id) = await ProjectAsync();
        var editor = app.Service<SchemaEditor>();
        var columns = SchemaEditor.Types.Select((t, i) => new NewColumn($"c{i}", t, Nullable: i % 2 == 0)).ToList();
        columns[0] = columns[0] with { Name = "id", Type = "SERIAL", PrimaryKey = true };
        columns[1] = columns[1] with { Default = "42" };
        Assert.Null(await editor.CreateTableAsync(id, "everything", columns, ownerColumn: true));

        var types = await Scalar(c, id, "select string_agg(format_type(atttypid, atttypmod), ',' order by attnum) from pg_attribute " +
            "where attrelid = 'everything'::regclass and attnum > 0");
        Assert.Equal("integer,integer,bigint,integer,boolean,double precision,numeric,timestamp with time zone,date,json,jsonb,uuid," +
                     "character varying(255),uuid", types);
        Assert.Equal("True", await Scalar(c, id, "select relrowsecurity from pg_class where oid = 'everything'::regclass"));
        Assert.Equal("42", await Scalar(c, id, "select pg_get_expr(adbin, adrelid) from pg_attrdef where adrelid = 'everything'::regclass and adnum = 2"));
        Assert.Equal("True", await Scalar(c, id, "select attnotnull from pg_attribute where attrelid = 'everything'::regclass and attname = 'c1'"));  // not nullable
        Assert.Equal("False", await Scalar(c, id, "select attnotnull from pg_attribute where attrelid = 'everything'::regclass and attname = 'c2'")); // nullable
    }

    [Fact]
    public async Task Adds_and_drops_columns_and_tables()
    {
        var (c, id) = await ProjectAsync();
        var editor = app.Service<SchemaEditor>();
        Assert.Null(await editor.CreateTableAsync(id, "notes", [new("id", "SERIAL", PrimaryKey: true), new("body", "TEXT")], false));
        Assert.Null(await editor.AddColumnAsync(id, "notes", new("created", "TIMESTAMPTZ", Nullable: false, Default: "now()")));
        await TestApp.SqlAsync(c, id, "insert into notes (body) values ('x')");
        Assert.Equal("1", await Scalar(c, id, "select count(*) from notes where created is not null"));
        Assert.Null(await editor.DropColumnAsync(id, "notes", "body"));
        Assert.Equal("id,created", await Scalar(c, id, "select string_agg(attname, ',' order by attnum) from pg_attribute where attrelid = 'notes'::regclass and attnum > 0 and not attisdropped"));
        Assert.Null(await editor.DropTableAsync(id, "notes"));
        Assert.Equal("True", await Scalar(c, id, "select to_regclass('notes') is null"));
    }

    [Fact]
    public async Task Bad_input_gets_postgres_error_and_changes_nothing()
    {
        var (c, id) = await ProjectAsync();
        var editor = app.Service<SchemaEditor>();
        Assert.Null(await editor.CreateTableAsync(id, "t", [new("id", "SERIAL", PrimaryKey: true)], false));
        Assert.Equal("42701", (await editor.AddColumnAsync(id, "t", new("id", "TEXT")))!.Code);          // duplicate column
        Assert.Equal("22P02", (await editor.AddColumnAsync(id, "t", new("n", "INTEGER", Default: "'abc'")))!.Code);
        Assert.Equal("22023", (await editor.AddColumnAsync(id, "t", new("n", "MONEY")))!.Code);          // not offered
        Assert.Equal("22023", (await editor.AddColumnAsync(id, "t", new("n", "TEXT", Default: "'a'; drop table t")))!.Code);
        Assert.Equal("42P07", (await editor.CreateTableAsync(id, "t", [new("x", "TEXT")], false))!.Code); // exists
        Assert.Equal("42703", (await editor.DropColumnAsync(id, "t", "nope"))!.Code);
        Assert.Null(await editor.CreateTableAsync(id, "x\"; drop schema public; --", [new("id", "INTEGER")], false)); // a weird name is just a name
        Assert.Equal("id", await Scalar(c, id, "select string_agg(attname, ',') from pg_attribute where attrelid = 't'::regclass and attnum > 0 and not attisdropped"));
        Assert.Equal("False", await Scalar(c, id, "select to_regclass(quote_ident('x\"; drop schema public; --')) is null"));
    }
}
